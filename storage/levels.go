package storage

// PatientLevelTags are the attributes copied into Patient.Attrs and
// Study.Attrs (patient module attributes), as 8 hex digit tags.
var PatientLevelTags = []string{
	"00100010", // Patient's Name
	"00100020", // Patient ID
	"00100021", // Issuer of Patient ID
	"00100030", // Patient's Birth Date
	"00100032", // Patient's Birth Time
	"00100040", // Patient's Sex
	"00101000", // Other Patient IDs
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
	"00080051", // Issuer of Accession Number Sequence (if flattened)
	"00080090", // Referring Physician's Name
	"00080201", // Timezone Offset From UTC
	"00081030", // Study Description
	"00081060", // Name of Physician(s) Reading Study
	"0020000D", // Study Instance UID
	"00200010", // Study ID
	"00101010", // Patient's Age
	"00101020", // Patient's Size
	"00101030", // Patient's Weight
	"001021B0", // Additional Patient History
	"00321032", // Requesting Physician
	"00321060", // Requested Procedure Description
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
