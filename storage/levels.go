package storage

import (
	"encoding/json"
	"fmt"
)

// PatientLevelTags are the attributes copied into Patient.Attrs and
// Study.Attrs (patient module attributes), as 8 hex digit tags.
var PatientLevelTags = []string{
	"00100010", // Patient's Name
	"00100020", // Patient ID
	"00100021", // Issuer of Patient ID
	"00100030", // Patient's Birth Date
	"00100032", // Patient's Birth Time
	"00100040", // Patient's Sex
	"00100024", // Issuer of Patient ID Qualifiers Sequence (items: SequenceItemTags)
	"00101000", // Other Patient IDs
	"00101002", // Other Patient IDs Sequence (items: SequenceItemTags)
	"00101001", // Other Patient Names
	"00102160", // Ethnic Group
	"00104000", // Patient Comments
}

// StudyLevelTags are the attributes copied into Study.Attrs besides the
// patient-level ones.
var StudyLevelTags = []string{
	"00080020", // Study Date
	"00080030", // Study Time
	"00080050", // Accession Number
	"00080051", // Issuer of Accession Number Sequence (items: SequenceItemTags)
	"00080090", // Referring Physician's Name
	"00080201", // Timezone Offset From UTC
	"00081030", // Study Description
	"00081032", // Procedure Code Sequence (items: SequenceItemTags)
	"00081060", // Name of Physician(s) Reading Study
	"00081110", // Referenced Study Sequence (items: SequenceItemTags)
	"0020000D", // Study Instance UID
	"00200010", // Study ID
	"00101010", // Patient's Age
	"00101020", // Patient's Size
	"00101030", // Patient's Weight
	"001021B0", // Additional Patient History
	"00321032", // Requesting Physician
	"00321060", // Requested Procedure Description
	"00400275", // Request Attributes Sequence (items: SequenceItemTags)
}

// SeriesLevelTags are the attributes copied into Series.Attrs.
var SeriesLevelTags = []string{
	"00080021", // Series Date
	"00080031", // Series Time
	"00080060", // Modality
	"00080070", // Manufacturer
	"00080080", // Institution Name
	"00081010", // Station Name
	"0008103E", // Series Description
	"00081050", // Performing Physician's Name
	"00081090", // Manufacturer's Model Name
	"00180015", // Body Part Examined
	"00185100", // Patient Position
	"0020000E", // Series Instance UID
	"00200011", // Series Number
	"00200060", // Laterality
	"00400244", // Performed Procedure Step Start Date
	"00400245", // Performed Procedure Step Start Time
	"00400254", // Performed Procedure Step Description
}

// ModalityTag is the Modality attribute (0008,0060).
const ModalityTag = "00080060"

// PickAttrs returns the subset of attrs whose tags are listed in one of the
// tag lists (nil if none).
func PickAttrs(attrs map[string]string, tagLists ...[]string) map[string]string {
	var out map[string]string
	for _, tags := range tagLists {
		for _, t := range tags {
			if v, ok := attrs[t]; ok {
				if out == nil {
					out = make(map[string]string)
				}
				out[t] = v
			}
		}
	}
	return out
}

// SequenceItemTags lists the sequences kept in Attrs (the level lists name
// them too) and, for each, the attributes of its items that are kept.
//
// A kept sequence is stored in Attrs under its own tag as a JSON array with
// one object per item, in item order; an object maps 8 hex digit tags to
// UTF-8 values (multiple values joined by '\'), and a kept sequence nested
// in an item is itself stored as a string holding its own JSON array:
//
//	"00101002": [{"00100020":"X","00100021":"Y"},{"00100020":"Z"}]
//
// so that the query engine matches and returns items whole (PS3.4
// C.2.2.2.6: an item key set matches one item, not values picked from
// different items). Items without any kept attribute are kept as {}. At
// most MaxSequenceItems items are kept; attributes without a value are
// left out.
var SequenceItemTags = map[string][]string{
	"00101002": { // Other Patient IDs Sequence
		"00100020", // Patient ID
		"00100021", // Issuer of Patient ID
		"00100022", // Type of Patient ID
		"00100024", // Issuer of Patient ID Qualifiers Sequence
	},
	"00100024": { // Issuer of Patient ID Qualifiers Sequence
		"00400032", // Universal Entity ID
		"00400033", // Universal Entity ID Type
		"00400035", // Identifier Type Code
	},
	"00080051": { // Issuer of Accession Number Sequence
		"00400031", // Local Namespace Entity ID
		"00400032", // Universal Entity ID
		"00400033", // Universal Entity ID Type
	},
	"00081032": { // Procedure Code Sequence
		"00080100", // Code Value
		"00080102", // Coding Scheme Designator
		"00080103", // Coding Scheme Version
		"00080104", // Code Meaning
	},
	"00400275": { // Request Attributes Sequence
		"00080050", // Accession Number
		"00080051", // Issuer of Accession Number Sequence
		"0020000D", // Study Instance UID
		"00321060", // Requested Procedure Description
		"00400007", // Scheduled Procedure Step Description
		"00400009", // Scheduled Procedure Step ID
		"00401001", // Requested Procedure ID
	},
	"00081110": { // Referenced Study Sequence
		"00081150", // Referenced SOP Class UID
		"00081155", // Referenced SOP Instance UID
	},
}

// MaxSequenceItems bounds the items kept of one sequence.
const MaxSequenceItems = 64

// EncodeItems returns the Attrs value of a kept sequence (see
// SequenceItemTags).
func EncodeItems(items []map[string]string) (string, error) {
	for i, it := range items {
		if it == nil {
			items[i] = map[string]string{}
		}
	}
	b, err := json.Marshal(items)
	if err != nil {
		return "", fmt.Errorf("storage: encode sequence items: %w", err)
	}
	return string(b), nil
}

// DecodeItems parses the Attrs value of a kept sequence (see
// SequenceItemTags); "" is no item.
func DecodeItems(v string) ([]map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	var items []map[string]string
	if err := json.Unmarshal([]byte(v), &items); err != nil {
		return nil, fmt.Errorf("storage: decode sequence items: %w", err)
	}
	return items, nil
}
