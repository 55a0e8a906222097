package identity_test

import (
	"fmt"

	"github.com/relais-health/relais/identity"
	"github.com/relais-health/relais/storage"
)

func Example() {
	// An index record as ingest writes it: the INS repeated in Other
	// Patient IDs Sequence, its qualifiers nested as a JSON string.
	quals, _ := storage.EncodeItems([]map[string]string{{"00400032": identity.OIDINSNIR, "00400033": "ISO"}})
	others, _ := storage.EncodeItems([]map[string]string{{
		"00100020": "184127645108946", "00100021": identity.NamespaceINSNIR, "00100024": quals,
	}})
	attrs := map[string]string{
		"00100020": "IPP123", "00100021": "CHSUD",
		"00100010": "DUPONT^Jean", "00100030": "19841227", "00100040": "M",
		"00101002": others,
	}
	id, _ := identity.FromAttrs(attrs, identity.WithLocalIssuer("1.2.250.1.999.1.1"))
	fmt.Println(id.Status, id.INS.Value, id.INS.Type)
	d := id.ForDocument()
	fmt.Println(d.UsesINS, d.Value, d.Reason)

	// Qualification is explicit, one step at a time, with evidence.
	fmt.Println(id.Upgrade(identity.QUAL, "all checked"))
	_ = id.Upgrade(identity.RECUP, "INSi call 42")
	_ = id.Upgrade(identity.QUAL, "identity card checked at admission")
	id.BirthPlace = "76451"
	d = id.ForDocument()
	fmt.Println(id.Status, d.UsesINS, d.Value, d.Root, d.IssuerOfPatientID)
	// Output:
	// PROV 184127645108946 INS-NIR
	// false IPP123 identity status is PROV, the INS is used only when QUAL
	// identity: status change refused: PROV → QUAL skips a step: QUAL needs both the INSi retrieval (RECUP) and the identity document check (VALI)
	// QUAL true 184127645108946 1.2.250.1.213.1.4.8 ASIP-SANTE-INS-NIR
}
