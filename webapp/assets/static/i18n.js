// i18n.js: French and English UI strings.
import { session } from './api.js';

const dict = {
  fr: {
    worklist: 'Liste de travail', studies: 'Examens', logout: 'Déconnexion', other: 'English',
    all: 'Tous', state: 'État', priority: 'Priorité', reader: 'Lecteur', patient: 'Patient', accession: 'N° accession',
    ready: 'Prêt le', due: 'Échéance', late: 'En retard', search: 'Rechercher', filter: 'Filtrer',
    scheduled: 'à lire', 'in-progress': 'en cours', openStates: 'Ouverts', claim: 'Prendre', reported: 'rédigé', returned: 'rendu', cancelled: 'annulé',
    worklistUnavailable: 'La liste de travail n’est pas disponible sur ce nœud : voici les derniers examens reçus.',
    live: 'en direct', offline: 'hors ligne', noItems: 'Aucun élément.', date: 'Date', description: 'Description', modality: 'Modalité',
    open: 'Ouvrir', images: 'images', series: 'Séries', loading: 'Chargement…',
    wl: 'Fenêtrage', pan: 'Déplacer', zoom: 'Zoom', measure: 'Mesure', reset: 'Réinit.', keyImage: 'Image clé',
    keyImageDone: 'Image clé enregistrée', keyImageFailed: 'Échec de l’image clé',
    presetBrain: 'Cerveau', presetStroke: 'AVC', presetBone: 'Os', presetLung: 'Poumon', presetDefault: 'Défaut',
    image: 'Im', request: 'Demande', noRequest: 'Aucune demande liée.', consent: 'Consentement',
    report: 'Compte rendu', template: 'Modèle', tplBlank: 'Vierge', tplStroke: 'Scanner AVC', tplHead: 'Scanner cérébral', tplChest: 'Radiographie thoracique',
    clinical_information: 'Renseignements cliniques', request_reason: 'Indication', technique: 'Technique',
    comparison: 'Comparaison', findings: 'Résultats', conclusion: 'Conclusion',
    sign: 'Signer', saved: 'Brouillon enregistré', saving: 'Enregistrement…', notSaved: 'Non enregistré',
    draft: 'brouillon', signed: 'signé', corrected: 'corrigé', signFailed: 'Signature refusée',
    confirmSign: 'Signer ce compte rendu ? Il sera envoyé au site demandeur.', readOnly: 'Lecture seule (rôle)',
    replaceTemplate: 'Remplacer le texte saisi par le modèle ?', compressed: 'image compressée (rendu serveur)',
    notImage: 'Aucune série d’images.', priors: 'Antérieurs',
  },
  en: {
    worklist: 'Worklist', studies: 'Studies', logout: 'Log out', other: 'Français',
    all: 'All', state: 'State', priority: 'Priority', reader: 'Reader', patient: 'Patient', accession: 'Accession',
    ready: 'Ready at', due: 'Due', late: 'Late', search: 'Search', filter: 'Filter',
    scheduled: 'scheduled', 'in-progress': 'in progress', openStates: 'Open', claim: 'Claim', reported: 'reported', returned: 'returned', cancelled: 'cancelled',
    worklistUnavailable: 'The worklist is not available on this node: here are the latest studies received.',
    live: 'live', offline: 'offline', noItems: 'No items.', date: 'Date', description: 'Description', modality: 'Modality',
    open: 'Open', images: 'images', series: 'Series', loading: 'Loading…',
    wl: 'Window', pan: 'Pan', zoom: 'Zoom', measure: 'Measure', reset: 'Reset', keyImage: 'Key image',
    keyImageDone: 'Key image flagged', keyImageFailed: 'Key image failed',
    presetBrain: 'Brain', presetStroke: 'Stroke', presetBone: 'Bone', presetLung: 'Lung', presetDefault: 'Default',
    image: 'Im', request: 'Request', noRequest: 'No linked request.', consent: 'Consent',
    report: 'Report', template: 'Template', tplBlank: 'Blank', tplStroke: 'Stroke CT', tplHead: 'Head CT', tplChest: 'Chest X-ray',
    clinical_information: 'Clinical information', request_reason: 'Request reason', technique: 'Technique',
    comparison: 'Comparison', findings: 'Findings', conclusion: 'Conclusion',
    sign: 'Sign', saved: 'Draft saved', saving: 'Saving…', notSaved: 'Not saved',
    draft: 'draft', signed: 'signed', corrected: 'corrected', signFailed: 'Signing refused',
    confirmSign: 'Sign this report? It will be sent to the requesting site.', readOnly: 'Read only (role)',
    replaceTemplate: 'Replace the text typed with the template?', compressed: 'compressed image (server rendering)',
    notImage: 'No image series.', priors: 'Priors',
  },
};

export function t(key) {
  const d = dict[session.lang] || dict.fr;
  return d[key] ?? dict.en[key] ?? key;
}

export function setLang(lang) {
  document.cookie = 'relais_lang=' + lang + '; path=/; max-age=31536000; samesite=strict';
  location.reload();
}
