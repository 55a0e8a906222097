package cda_test

import (
	"fmt"
	"time"

	"github.com/relais-health/relais/cda"
)

func ExampleLevel3() {
	at := time.Date(2026, 1, 8, 11, 17, 0, 0, time.UTC)
	org := cda.Organisation{FINESS: "920008059", Name: "Centre de radiologie Ambroise"}
	rad := cda.Professional{RPPS: "10001234567", Given: "Jacques", Family: "BIDEAULT",
		Specialty: cda.SpecialtyRadiologist, Organisation: org}
	r := &cda.Report{
		ID: "1.2.250.1.999.1.1.2", SetID: "1.2.250.1.999.1.1", Version: 1, Effective: at,
		Patient: cda.Patient{INS: "279035121518989", INSOID: cda.OIDINSNIRTest, IdentityStatus: "QUAL",
			BirthName: "PAT-TROIS", FirstNames: "DOMINIQUE", Sex: "F",
			BirthDate: time.Date(1979, 3, 28, 0, 0, 0, 0, time.UTC), BirthPlace: "51215"},
		Author: rad, LegalAuthenticator: rad, Custodian: org,
		Study: cda.Study{StudyInstanceUID: "1.2.3.4", Modality: "CT",
			ProcedureCode: cda.Code{Code: "24727-0", DisplayName: "CT tête avec contraste IV"}, Start: at},
		Encounter:  cda.Encounter{Facility: org, Start: at},
		Conclusion: "Examen normal.",
	}
	doc, err := cda.Level3(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(doc) > 0)

	r.Patient.BirthPlace = ""
	_, err = cda.Level3(r)
	fmt.Println(err)
	// Output:
	// true
	// cda: Patient.BirthPlace: required
}
