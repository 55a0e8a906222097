package identity

import (
	"errors"
	"fmt"
	"strings"
)

// Status is the identity status of the Référentiel INS. The order is the
// order of trust: PROV < RECUP < VALI < QUAL. The zero value is PROV.
type Status int

const (
	// PROV (provisoire): not checked against an identity document, INS not
	// retrieved from the INSi teleservice. The default.
	PROV Status = iota
	// RECUP (récupérée): INS retrieved from (or verified with) the INSi
	// teleservice, identity not checked against a high-trust document.
	RECUP
	// VALI (validée): checked against a high-trust identity document, INS
	// not retrieved from the teleservice.
	VALI
	// QUAL (qualifiée): both: the only status under which the INS may be
	// used to reference shared health data.
	QUAL
)

func (s Status) String() string {
	switch s {
	case PROV:
		return "PROV"
	case RECUP:
		return "RECUP"
	case VALI:
		return "VALI"
	case QUAL:
		return "QUAL"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// ParseStatus parses PROV, RECUP, VALI or QUAL (case-insensitive).
func ParseStatus(s string) (Status, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "PROV":
		return PROV, nil
	case "RECUP":
		return RECUP, nil
	case "VALI":
		return VALI, nil
	case "QUAL":
		return QUAL, nil
	}
	return PROV, fmt.Errorf("identity: unknown identity status %q (want PROV, RECUP, VALI or QUAL)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) {
	if s < PROV || s > QUAL {
		return nil, fmt.Errorf("identity: invalid status %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ErrTransition is wrapped by the errors of Upgrade.
var ErrTransition = errors.New("identity: status change refused")

// Upgrade changes the identity status to `to`, recording evidence (what
// proves the change: the INSi call reference, the identity document
// checked, the operator). The rules, from the Référentiel INS (ci-sis.md
// §4: "only a qualified identity … fetched from the national INSi service
// and checked against an ID document"; "never promote it silently"):
//
//   - a downgrade (to a lower status) is always allowed;
//   - the same status is a no-op;
//   - every upgrade needs non-empty evidence;
//   - PROV → RECUP: the INS was retrieved from the INSi teleservice, so
//     id.INS must hold a well-formed matricule (set it first);
//   - PROV → VALI: a high-trust identity document was checked;
//   - RECUP → QUAL: the identity document check is added to the retrieved
//     INS; RECUP → VALI is refused (checking the document of a retrieved
//     identity makes it QUAL, it does not drop the retrieval);
//   - VALI → QUAL: the INS was retrieved from the teleservice, so id.INS
//     must hold a well-formed matricule;
//   - PROV → QUAL is refused: the two steps are recorded one at a time.
//
// On error the identity is unchanged.
func (id *Identity) Upgrade(to Status, evidence string) error {
	from := id.Status
	if to < PROV || to > QUAL {
		return fmt.Errorf("%w: invalid status %d", ErrTransition, int(to))
	}
	if to == from {
		return nil
	}
	if to < from {
		id.Status = to
		id.History = append(id.History, Transition{From: from, To: to, Evidence: evidence})
		return nil
	}
	if strings.TrimSpace(evidence) == "" {
		return fmt.Errorf("%w: %s → %s needs evidence", ErrTransition, from, to)
	}
	needINS := false
	switch {
	case from == PROV && to == RECUP:
		needINS = true
	case from == PROV && to == VALI:
	case from == RECUP && to == QUAL:
		needINS = true
	case from == VALI && to == QUAL:
		needINS = true
	case from == RECUP && to == VALI:
		return fmt.Errorf("%w: RECUP → VALI: a retrieved identity checked against an identity document becomes QUAL", ErrTransition)
	case from == PROV && to == QUAL:
		return fmt.Errorf("%w: PROV → QUAL skips a step: QUAL needs both the INSi retrieval (RECUP) and the identity document check (VALI)", ErrTransition)
	default:
		return fmt.Errorf("%w: %s → %s", ErrTransition, from, to)
	}
	if needINS {
		switch {
		case id.INS == nil || !id.INS.IsINS():
			return fmt.Errorf("%w: %s → %s needs the INS retrieved from the INSi teleservice (none set)", ErrTransition, from, to)
		case !ValidINSKey(id.INS.Value):
			return fmt.Errorf("%w: %s → %s: INS %q is not well-formed (key)", ErrTransition, from, to, id.INS.Value)
		}
	}
	id.Status = to
	id.History = append(id.History, Transition{From: from, To: to, Evidence: evidence})
	return nil
}
