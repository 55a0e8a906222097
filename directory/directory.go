// Package directory owns who is who: health organisations by FINESS,
// professionals by RPPS and requesting sites. Its entries come from the
// YAML configuration (organisations, professionals, sites) plus what
// administrators change through the HTTP API (/api/directory).
//
// The configuration's entries are the base. The API adds entries or
// overrides configured ones; deleting an API entry reverts to the
// configuration's entry of the same id, if any, and a configured entry
// cannot be deleted (edit the configuration). Every change is validated by
// merging it into a copy of the configuration and calling
// config.ValidateReporting, so nothing inconsistent is ever written. The API
// entries persist in DATA/directory/directory.json, written atomically, and
// every change is journaled as "directory.changed".
package directory

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/internal/atomicfile"
	"github.com/relais-health/relais/journal"
)

// Kind is a kind of directory entry; its value is the configuration key
// and the API path segment.
type Kind string

// Kinds.
const (
	Organisations Kind = "organisations"
	Professionals Kind = "professionals"
	Sites         Kind = "sites"
)

// Kinds returns every kind.
func Kinds() []Kind { return []Kind{Organisations, Professionals, Sites} }

// ParseKind returns the kind named s ("professionals"; the singular and
// "orgs"/"org" are accepted).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "organisations", "organisation", "organizations", "organization", "orgs", "org":
		return Organisations, nil
	case "professionals", "professional":
		return Professionals, nil
	case "sites", "site":
		return Sites, nil
	}
	return "", fmt.Errorf("unknown kind %q (valid: organisations, professionals, sites)", s)
}

// Sources of entries.
const (
	SourceConfig = "config" // the YAML configuration
	SourceAPI    = "api"    // added or overridden through the API
)

// Errors. Those returned wrap them (errors.Is); a validation error is a
// *config.KeyError (errors.As) naming the key.
var (
	// ErrNotFound: no entry of that kind and id.
	ErrNotFound = errors.New("not in the directory")
	// ErrConfigured: the entry comes from the configuration file and has
	// no API override: it cannot be deleted through the API.
	ErrConfigured = errors.New("comes from the configuration file: edit the configuration to remove it")
	// ErrInUse: an organisation still referenced by a professional, a
	// site or reports.custodian.
	ErrInUse = errors.New("still referenced")
	// ErrInvalidJSON: a body that is not a JSON object.
	ErrInvalidJSON = errors.New("invalid JSON")
)

// IsConflict reports whether err is ErrConfigured or ErrInUse (HTTP 409).
func IsConflict(err error) bool { return errors.Is(err, ErrConfigured) || errors.Is(err, ErrInUse) }

// Actions journaled in directory.changed.
const (
	ActionCreated    = "created"    // new id
	ActionOverridden = "overridden" // API entry over a configured one
	ActionUpdated    = "updated"    // API entry replaced
	ActionDeleted    = "deleted"    // API entry removed, nothing left
	ActionReverted   = "reverted"   // API override removed, the configured entry is back
)

// FileName is the overlay file, under DATA/directory.
const FileName = "directory.json"

// Entry is one directory entry as the API shows it.
type Entry[T any] struct {
	ID     string
	Source string // SourceConfig or SourceAPI
	Value  T
}

// Entries is the whole directory, each kind sorted by id.
type Entries struct {
	Organisations []Entry[config.Organisation] `json:"organisations"`
	Professionals []Entry[config.Professional] `json:"professionals"`
	Sites         []Entry[config.Site]         `json:"sites"`
}

// overlay is what the API added or overrode.
type overlay struct {
	Organisations map[string]config.Organisation
	Professionals map[string]config.Professional
	Sites         map[string]config.Site
}

func (o overlay) clone() overlay {
	return overlay{
		Organisations: maps.Clone(o.Organisations),
		Professionals: maps.Clone(o.Professionals),
		Sites:         maps.Clone(o.Sites),
	}
}

func (o *overlay) init() {
	if o.Organisations == nil {
		o.Organisations = map[string]config.Organisation{}
	}
	if o.Professionals == nil {
		o.Professionals = map[string]config.Professional{}
	}
	if o.Sites == nil {
		o.Sites = map[string]config.Site{}
	}
}

// Directory is the merged directory. It is safe for concurrent use.
type Directory struct {
	path    string
	journal *journal.Journal

	mu     sync.RWMutex
	base   *config.Config // the configuration's entries (maps copied)
	over   overlay        // the API's entries
	merged *config.Config // base + over, validated
}

// Open reads the API entries of dataDir/directory/directory.json (none if
// the file does not exist) over cfg's entries and validates the result. A
// file that cannot be read or parsed, or whose entries no longer agree
// with the configuration, is an error naming the file. j (may be nil)
// receives the directory.changed events.
func Open(dataDir string, cfg *config.Config, j *journal.Journal) (*Directory, error) {
	if cfg == nil {
		return nil, errors.New("directory: no configuration")
	}
	base := *cfg
	base.Organisations = maps.Clone(cfg.Organisations)
	base.Professionals = maps.Clone(cfg.Professionals)
	base.Sites = maps.Clone(cfg.Sites)
	for id, s := range base.Sites {
		base.Sites[id] = cloneSite(s)
	}
	d := &Directory{path: filepath.Join(dataDir, "directory", FileName), journal: j, base: &base}
	if err := d.base.ValidateReporting(); err != nil {
		return nil, fmt.Errorf("directory: the configuration: %w", err)
	}
	over, err := readOverlay(d.path)
	if err != nil {
		return nil, err
	}
	merged := merge(d.base, over)
	if err := merged.ValidateReporting(); err != nil {
		return nil, fmt.Errorf("directory: %s no longer agrees with the configuration (fix the configuration, or the API entry with relais directory): %w", d.path, err)
	}
	d.over, d.merged = over, merged
	return d, nil
}

// Path returns the overlay file's path.
func (d *Directory) Path() string { return d.path }

// cloneSite returns s with its own slices (nil when empty).
func cloneSite(s config.Site) config.Site {
	s.CallingAEs = cloneStrings(s.CallingAEs)
	s.Users = cloneStrings(s.Users)
	s.ReportDestinations = cloneStrings(s.ReportDestinations)
	return s
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// merge returns a copy of base with over's entries set.
func merge(base *config.Config, over overlay) *config.Config {
	m := *base
	m.Organisations = maps.Clone(base.Organisations)
	m.Professionals = maps.Clone(base.Professionals)
	m.Sites = maps.Clone(base.Sites)
	if m.Organisations == nil {
		m.Organisations = map[string]config.Organisation{}
	}
	if m.Professionals == nil {
		m.Professionals = map[string]config.Professional{}
	}
	if m.Sites == nil {
		m.Sites = map[string]config.Site{}
	}
	maps.Copy(m.Organisations, over.Organisations)
	maps.Copy(m.Professionals, over.Professionals)
	maps.Copy(m.Sites, over.Sites)
	return &m
}

// Organisation returns the organisation id.
func (d *Directory) Organisation(id string) (config.Organisation, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.merged.Organisations[id]
	return o, ok
}

// Professional returns the professional id.
func (d *Directory) Professional(id string) (config.Professional, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	p, ok := d.merged.Professionals[id]
	return p, ok
}

// ProfessionalByUser returns the professional a token user acts as: the
// one whose User is user, or whose id is user when its User is empty.
func (d *Directory) ProfessionalByUser(user string) (id string, p config.Professional, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.merged.ProfessionalFor(user)
}

// Site returns the site id.
func (d *Directory) Site(id string) (config.Site, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s, ok := d.merged.Sites[id]
	return cloneSite(s), ok
}

// SiteFor returns the site a study sent by callingAE (DIMSE) or user
// (STOW-RS) belongs to.
func (d *Directory) SiteFor(callingAE, user string) (id string, s config.Site, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, s, ok = d.merged.SiteFor(callingAE, user)
	return id, cloneSite(s), ok
}

// Snapshot returns every entry with its source.
func (d *Directory) Snapshot() Entries {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return Entries{
		Organisations: entries(d.merged.Organisations, d.over.Organisations, func(o config.Organisation) config.Organisation { return o }),
		Professionals: entries(d.merged.Professionals, d.over.Professionals, func(p config.Professional) config.Professional { return p }),
		Sites:         entries(d.merged.Sites, d.over.Sites, cloneSite),
	}
}

func entries[T any](merged, over map[string]T, clone func(T) T) []Entry[T] {
	ids := make([]string, 0, len(merged))
	for id := range merged {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]Entry[T], 0, len(ids))
	for _, id := range ids {
		src := SourceConfig
		if _, ok := over[id]; ok {
			src = SourceAPI
		}
		out = append(out, Entry[T]{ID: id, Source: src, Value: clone(merged[id])})
	}
	return out
}

// source returns the source of kind/id, "" when absent. d.mu held.
func (d *Directory) source(k Kind, id string) string {
	var inOver, inBase bool
	switch k {
	case Organisations:
		_, inOver = d.over.Organisations[id]
		_, inBase = d.base.Organisations[id]
	case Professionals:
		_, inOver = d.over.Professionals[id]
		_, inBase = d.base.Professionals[id]
	case Sites:
		_, inOver = d.over.Sites[id]
		_, inBase = d.base.Sites[id]
	}
	switch {
	case inOver:
		return SourceAPI
	case inBase:
		return SourceConfig
	}
	return ""
}

// PutOrganisation adds or replaces organisation id (an API entry).
func (d *Directory) PutOrganisation(id string, o config.Organisation, user string) error {
	_, err := d.put(Organisations, id, user, func(ov *overlay) { ov.Organisations[id] = o })
	return err
}

// PutProfessional adds or replaces professional id (an API entry).
func (d *Directory) PutProfessional(id string, p config.Professional, user string) error {
	_, err := d.put(Professionals, id, user, func(ov *overlay) { ov.Professionals[id] = p })
	return err
}

// PutSite adds or replaces site id (an API entry).
func (d *Directory) PutSite(id string, s config.Site, user string) error {
	s = cloneSite(s)
	_, err := d.put(Sites, id, user, func(ov *overlay) { ov.Sites[id] = s })
	return err
}

// put validates and applies set, persists and journals; it returns the
// action.
func (d *Directory) put(k Kind, id, user string, set func(*overlay)) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	action := ActionUpdated
	switch d.source(k, id) {
	case "":
		action = ActionCreated
	case SourceConfig:
		action = ActionOverridden
	}
	over := d.over.clone()
	over.init()
	set(&over)
	if err := d.commit(k, id, user, action, over); err != nil {
		return "", err
	}
	return action, nil
}

// Delete removes the API entry kind/id: the configured entry of that id,
// if any, is then in force again. A configured entry without override
// cannot be deleted (ErrConfigured), nor an organisation still referenced
// (ErrInUse).
func (d *Directory) Delete(k Kind, id, user string) error {
	_, err := d.delete(k, id, user)
	return err
}

func (d *Directory) delete(k Kind, id, user string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.source(k, id) {
	case "":
		if !slices.Contains(Kinds(), k) {
			return "", fmt.Errorf("directory: %w", errUnknownKind(k))
		}
		return "", fmt.Errorf("directory: %s.%s: %w", k, id, ErrNotFound)
	case SourceConfig:
		return "", fmt.Errorf("directory: %s.%s %w", k, id, ErrConfigured)
	}
	over := d.over.clone()
	action := ActionDeleted
	switch k {
	case Organisations:
		delete(over.Organisations, id)
		if _, ok := d.base.Organisations[id]; ok {
			action = ActionReverted
		} else if refs := d.referencing(id); len(refs) > 0 {
			return "", fmt.Errorf("directory: organisations.%s is %w by %s: change or delete them first", id, ErrInUse, strings.Join(refs, ", "))
		}
	case Professionals:
		delete(over.Professionals, id)
		if _, ok := d.base.Professionals[id]; ok {
			action = ActionReverted
		}
	case Sites:
		delete(over.Sites, id)
		if _, ok := d.base.Sites[id]; ok {
			action = ActionReverted
		}
	}
	if err := d.commit(k, id, user, action, over); err != nil {
		return "", err
	}
	return action, nil
}

func errUnknownKind(k Kind) error {
	return fmt.Errorf("%w: unknown kind %q (valid: organisations, professionals, sites)", ErrNotFound, string(k))
}

// referencing lists the keys that reference organisation id. d.mu held.
func (d *Directory) referencing(id string) []string {
	var refs []string
	for _, pid := range sortedKeys(d.merged.Professionals) {
		if d.merged.Professionals[pid].Organisation == id {
			refs = append(refs, "professionals."+pid)
		}
	}
	for _, sid := range sortedKeys(d.merged.Sites) {
		if d.merged.Sites[sid].Organisation == id {
			refs = append(refs, "sites."+sid)
		}
	}
	if d.merged.Reports.Custodian == id {
		refs = append(refs, "reports.custodian")
	}
	return refs
}

// commit validates over merged with the base, writes it and makes it
// current, then journals the change. d.mu held for writing.
func (d *Directory) commit(k Kind, id, user, action string, over overlay) error {
	merged := merge(d.base, over)
	if err := merged.ValidateReporting(); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if err := writeOverlay(d.path, over); err != nil {
		return err
	}
	d.over, d.merged = over, merged
	if d.journal != nil {
		data, _ := json.Marshal(map[string]string{"kind": string(k), "id": id, "action": action})
		d.journal.AppendAsync(&journal.Event{
			Kind:   "directory.changed",
			User:   user,
			Reason: fmt.Sprintf("%s.%s %s", k, id, action),
			Data:   data,
		})
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fileVersion is the overlay file's format version.
const fileVersion = 1

// readOverlay reads the overlay file; a missing file is an empty overlay.
func readOverlay(path string) (overlay, error) {
	var over overlay
	over.init()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return over, nil
	}
	if err != nil {
		return over, fmt.Errorf("directory: %w", err)
	}
	bad := func(err error) (overlay, error) {
		return overlay{}, fmt.Errorf("directory: %s is corrupt (restore it or move it away to drop the API's entries): %w", path, err)
	}
	var f struct {
		Version       *int                       `json:"version"`
		Organisations map[string]json.RawMessage `json:"organisations"`
		Professionals map[string]json.RawMessage `json:"professionals"`
		Sites         map[string]json.RawMessage `json:"sites"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return bad(err)
	}
	if dec.More() {
		return bad(errors.New("trailing data after the JSON object"))
	}
	if f.Version == nil || *f.Version != fileVersion {
		return bad(fmt.Errorf("version is not %d", fileVersion))
	}
	for id, raw := range f.Organisations {
		var o config.Organisation
		if _, _, err := decodeFields(raw, string(Organisations)+"."+id, &o, false); err != nil {
			return bad(err)
		}
		over.Organisations[id] = o
	}
	for id, raw := range f.Professionals {
		var p config.Professional
		if _, _, err := decodeFields(raw, string(Professionals)+"."+id, &p, false); err != nil {
			return bad(err)
		}
		over.Professionals[id] = p
	}
	for id, raw := range f.Sites {
		var s config.Site
		if _, _, err := decodeFields(raw, string(Sites)+"."+id, &s, false); err != nil {
			return bad(err)
		}
		over.Sites[id] = cloneSite(s)
	}
	return over, nil
}

// writeOverlay writes the overlay file atomically: a temporary file in the
// same directory, fsync, rename, fsync of the directory. Mode 0600.
func writeOverlay(path string, over overlay) error {
	body, err := encodeOverlay(over)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if err := atomicfile.Write(dir, filepath.Base(path), body, 0o600); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	return nil
}

func encodeOverlay(over overlay) ([]byte, error) {
	var sb strings.Builder
	sb.WriteString("{\n  \"version\": 1")
	section := func(name string, ids []string, value func(id string) any) error {
		sb.WriteString(",\n  \"" + name + "\": {")
		for i, id := range ids {
			if i > 0 {
				sb.WriteString(",")
			}
			k, _ := json.Marshal(id)
			b, err := encodeFields(value(id), nil)
			if err != nil {
				return err
			}
			sb.WriteString("\n    " + string(k) + ": " + string(b))
		}
		if len(ids) > 0 {
			sb.WriteString("\n  ")
		}
		sb.WriteString("}")
		return nil
	}
	if err := section(string(Organisations), sortedKeys(over.Organisations), func(id string) any { return over.Organisations[id] }); err != nil {
		return nil, err
	}
	if err := section(string(Professionals), sortedKeys(over.Professionals), func(id string) any { return over.Professionals[id] }); err != nil {
		return nil, err
	}
	if err := section(string(Sites), sortedKeys(over.Sites), func(id string) any { return over.Sites[id] }); err != nil {
		return nil, err
	}
	sb.WriteString("\n}\n")
	return []byte(sb.String()), nil
}
