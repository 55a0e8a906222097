package dicom

import (
	"fmt"
	"sync"

	dict "github.com/suyashkumar/dicom/pkg/tag"
)

// Tag identifies a data element: group<<16 | element.
type Tag uint32

// NewTag builds a Tag from its group and element numbers.
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the group number of t.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the element number of t.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats t as "(gggg,eeee)" in upper-case hexadecimal.
func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// IsPrivate reports whether t belongs to an odd (private) group.
func (t Tag) IsPrivate() bool { return t.Group()%2 == 1 }

// Well-known tags.
const (
	TagFileMetaInformationGroupLength  Tag = 0x00020000
	TagFileMetaInformationVersion      Tag = 0x00020001
	TagMediaStorageSOPClassUID         Tag = 0x00020002
	TagMediaStorageSOPInstanceUID      Tag = 0x00020003
	TagTransferSyntaxUID               Tag = 0x00020010
	TagImplementationClassUID          Tag = 0x00020012
	TagImplementationVersionName       Tag = 0x00020013
	TagSourceApplicationEntityTitle    Tag = 0x00020016
	TagSendingApplicationEntityTitle   Tag = 0x00020017
	TagReceivingApplicationEntityTitle Tag = 0x00020018
	TagPrivateInformationCreatorUID    Tag = 0x00020100
	TagPrivateInformation              Tag = 0x00020102

	TagSpecificCharacterSet           Tag = 0x00080005
	TagImageType                      Tag = 0x00080008
	TagSOPClassUID                    Tag = 0x00080016
	TagSOPInstanceUID                 Tag = 0x00080018
	TagStudyDate                      Tag = 0x00080020
	TagSeriesDate                     Tag = 0x00080021
	TagContentDate                    Tag = 0x00080023
	TagStudyTime                      Tag = 0x00080030
	TagSeriesTime                     Tag = 0x00080031
	TagContentTime                    Tag = 0x00080033
	TagAccessionNumber                Tag = 0x00080050
	TagQueryRetrieveLevel             Tag = 0x00080052
	TagRetrieveAETitle                Tag = 0x00080054
	TagModality                       Tag = 0x00080060
	TagModalitiesInStudy              Tag = 0x00080061
	TagManufacturer                   Tag = 0x00080070
	TagInstitutionName                Tag = 0x00080080
	TagReferringPhysicianName         Tag = 0x00080090
	TagStationName                    Tag = 0x00081010
	TagStudyDescription               Tag = 0x00081030
	TagSeriesDescription              Tag = 0x0008103E
	TagPatientName                    Tag = 0x00100010
	TagPatientID                      Tag = 0x00100020
	TagIssuerOfPatientID              Tag = 0x00100021
	TagPatientBirthDate               Tag = 0x00100030
	TagPatientSex                     Tag = 0x00100040
	TagOtherPatientIDsSequence        Tag = 0x00101002
	TagBodyPartExamined               Tag = 0x00180015
	TagProtocolName                   Tag = 0x00181030
	TagStudyInstanceUID               Tag = 0x0020000D
	TagSeriesInstanceUID              Tag = 0x0020000E
	TagStudyID                        Tag = 0x00200010
	TagSeriesNumber                   Tag = 0x00200011
	TagInstanceNumber                 Tag = 0x00200013
	TagNumberOfStudyRelatedSeries     Tag = 0x00201206
	TagNumberOfStudyRelatedInstances  Tag = 0x00201208
	TagNumberOfSeriesRelatedInstances Tag = 0x00201209
	TagSamplesPerPixel                Tag = 0x00280002
	TagPhotometricInterpretation      Tag = 0x00280004
	TagNumberOfFrames                 Tag = 0x00280008
	TagRows                           Tag = 0x00280010
	TagColumns                        Tag = 0x00280011
	TagBitsAllocated                  Tag = 0x00280100
	TagBitsStored                     Tag = 0x00280101
	TagHighBit                        Tag = 0x00280102
	TagPixelRepresentation            Tag = 0x00280103
	TagPixelData                      Tag = 0x7FE00010

	TagItem                     Tag = 0xFFFEE000
	TagItemDelimitationItem     Tag = 0xFFFEE00D
	TagSequenceDelimitationItem Tag = 0xFFFEE0DD
)

// dictTag maps t to the dictionary key, folding the repeating groups
// (50xx curves, 60xx overlays, 7Fxx variable pixel data) onto their base.
func dictTag(t Tag) dict.Tag {
	g, e := t.Group(), t.Element()
	switch {
	case g >= 0x5000 && g <= 0x50FF && g%2 == 0:
		g = 0x5000
	case g >= 0x6000 && g <= 0x60FF && g%2 == 0:
		g = 0x6000
	case g >= 0x7F00 && g <= 0x7FFF && g%2 == 0 && g != 0x7FE0:
		g = 0x7F00
	}
	return dict.Tag{Group: g, Element: e}
}

// LookupVR returns the value representation of t from the data dictionary.
// Group length tags (gggg,0000) are UL, private creator elements
// (gggg,0010-00FF in an odd group) are LO, other private tags and unknown
// tags are UN. Where the dictionary allows several VRs (e.g. "OB or OW",
// "US or SS") the one used by implicit VR little endian is returned: OW if
// allowed, otherwise the first listed.
func LookupVR(t Tag) VR {
	g, e := t.Group(), t.Element()
	if e == 0 {
		return VRUL
	}
	if g%2 == 1 {
		if e >= 0x0010 && e <= 0x00FF {
			return VRLO
		}
		return VRUN
	}
	switch t {
	case TagItem, TagItemDelimitationItem, TagSequenceDelimitationItem:
		return ""
	}
	info, err := dict.Find(dictTag(t))
	if err != nil || len(info.VRs) == 0 {
		return VRUN
	}
	for _, v := range info.VRs {
		if v == "OW" {
			return VROW
		}
	}
	v := VR(info.VRs[0])
	if !v.valid() {
		return VRUN
	}
	return v
}

// Keyword returns the dictionary keyword of t ("PatientName"), or "" if t
// is not in the dictionary.
func Keyword(t Tag) string {
	if t.IsPrivate() {
		return ""
	}
	info, err := dict.Find(dictTag(t))
	if err != nil || info.Keyword == "GenericGroupLength" {
		return ""
	}
	return info.Keyword
}

var (
	keywordOnce sync.Once
	keywordMap  map[string]Tag
	keywordMu   sync.Mutex
)

// TagByKeyword returns the tag whose dictionary keyword is kw.
func TagByKeyword(kw string) (Tag, bool) {
	if kw == "" {
		return 0, false
	}
	keywordOnce.Do(func() { keywordMap = make(map[string]Tag) })
	keywordMu.Lock()
	t, ok := keywordMap[kw]
	keywordMu.Unlock()
	if ok {
		return t, t != 0
	}
	info, err := dict.FindByKeyword(kw)
	if err == nil && info.Keyword != kw {
		err = fmt.Errorf("keyword %q is a name, not a keyword", kw)
	}
	keywordMu.Lock()
	defer keywordMu.Unlock()
	if len(keywordMap) > 10000 { // bound the cache of misses
		keywordMap = make(map[string]Tag)
	}
	if err != nil {
		keywordMap[kw] = 0
		return 0, false
	}
	t = NewTag(info.Tag.Group, info.Tag.Element)
	keywordMap[kw] = t
	return t, true
}
