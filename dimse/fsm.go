package dimse

import "fmt"

// State is a state of the DICOM upper layer state machine, PS3.8 Table 9-1.
type State uint8

// States, PS3.8 Table 9-1.
const (
	Sta1      State = 1 + iota // Idle
	Sta2                       // Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
	Sta3                       // Awaiting local A-ASSOCIATE response primitive
	Sta4                       // Awaiting transport connection opening to complete
	Sta5                       // Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
	Sta6                       // Association established and ready for data transfer
	Sta7                       // Awaiting A-RELEASE-RP PDU
	Sta8                       // Awaiting local A-RELEASE response primitive
	Sta9                       // Release collision requestor side; awaiting A-RELEASE response
	Sta10                      // Release collision acceptor side; awaiting A-RELEASE-RP PDU
	Sta11                      // Release collision requestor side; awaiting A-RELEASE-RP PDU
	Sta12                      // Release collision acceptor side; awaiting A-RELEASE response primitive
	Sta13                      // Awaiting transport connection close indication
	numStates = iota + 1
)

var stateNames = [...]string{
	Sta1:  "idle",
	Sta2:  "transport connection open, awaiting A-ASSOCIATE-RQ PDU",
	Sta3:  "awaiting local A-ASSOCIATE response primitive",
	Sta4:  "awaiting transport connection opening to complete",
	Sta5:  "awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU",
	Sta6:  "association established",
	Sta7:  "awaiting A-RELEASE-RP PDU",
	Sta8:  "awaiting local A-RELEASE response primitive",
	Sta9:  "release collision requestor side, awaiting A-RELEASE response primitive",
	Sta10: "release collision acceptor side, awaiting A-RELEASE-RP PDU",
	Sta11: "release collision requestor side, awaiting A-RELEASE-RP PDU",
	Sta12: "release collision acceptor side, awaiting A-RELEASE response primitive",
	Sta13: "awaiting transport connection close",
}

func (s State) String() string {
	if s >= Sta1 && s <= Sta13 {
		return fmt.Sprintf("Sta%d (%s)", uint8(s), stateNames[s])
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// FSMEvent is an event of the upper layer state machine, PS3.8 Table 9-2.
type FSMEvent uint8

// Events, PS3.8 Table 9-2.
const (
	Evt1      FSMEvent = 1 + iota // A-ASSOCIATE request (local user)
	Evt2                          // Transport connect confirmation
	Evt3                          // A-ASSOCIATE-AC PDU received
	Evt4                          // A-ASSOCIATE-RJ PDU received
	Evt5                          // Transport connection indication
	Evt6                          // A-ASSOCIATE-RQ PDU received
	Evt7                          // A-ASSOCIATE response primitive (accept)
	Evt8                          // A-ASSOCIATE response primitive (reject)
	Evt9                          // P-DATA request primitive
	Evt10                         // P-DATA-TF PDU received
	Evt11                         // A-RELEASE request primitive
	Evt12                         // A-RELEASE-RQ PDU received
	Evt13                         // A-RELEASE-RP PDU received
	Evt14                         // A-RELEASE response primitive
	Evt15                         // A-ABORT request primitive
	Evt16                         // A-ABORT PDU received
	Evt17                         // Transport connection closed indication
	Evt18                         // ARTIM timer expired
	Evt19                         // Unrecognized or invalid PDU received
	numEvents = iota + 1
)

var eventNames = [...]string{
	Evt1: "A-ASSOCIATE request (local user)", Evt2: "transport connect confirmation",
	Evt3: "A-ASSOCIATE-AC PDU received", Evt4: "A-ASSOCIATE-RJ PDU received",
	Evt5: "transport connection indication", Evt6: "A-ASSOCIATE-RQ PDU received",
	Evt7: "A-ASSOCIATE response primitive (accept)", Evt8: "A-ASSOCIATE response primitive (reject)",
	Evt9: "P-DATA request primitive", Evt10: "P-DATA-TF PDU received",
	Evt11: "A-RELEASE request primitive", Evt12: "A-RELEASE-RQ PDU received",
	Evt13: "A-RELEASE-RP PDU received", Evt14: "A-RELEASE response primitive",
	Evt15: "A-ABORT request primitive", Evt16: "A-ABORT PDU received",
	Evt17: "transport connection closed", Evt18: "ARTIM timer expired",
	Evt19: "unrecognized or invalid PDU received",
}

func (e FSMEvent) String() string {
	if e >= Evt1 && e <= Evt19 {
		return fmt.Sprintf("Evt%d (%s)", uint8(e), eventNames[e])
	}
	return fmt.Sprintf("FSMEvent(%d)", uint8(e))
}

// eventForPDU maps a received PDU type to its event.
func eventForPDU(t PDUType) FSMEvent {
	switch t {
	case PDUAssociateAC:
		return Evt3
	case PDUAssociateRJ:
		return Evt4
	case PDUAssociateRQ:
		return Evt6
	case PDUPDataTF:
		return Evt10
	case PDUReleaseRQ:
		return Evt12
	case PDUReleaseRP:
		return Evt13
	case PDUAbort:
		return Evt16
	}
	return Evt19
}

// Action is an action of the state machine, PS3.8 Tables 9-6 to 9-9.
type Action uint8

// Actions. ActNone marks a (event, state) pair the table leaves empty: the
// event cannot occur in that state (a local primitive issued at the wrong
// time), which the engine reports as an error without a transition.
const (
	ActNone Action = iota
	AE1            // Issue TRANSPORT CONNECT request primitive → Sta4
	AE2            // Send A-ASSOCIATE-RQ PDU → Sta5
	AE3            // Issue A-ASSOCIATE confirmation (accept) primitive → Sta6
	AE4            // Issue A-ASSOCIATE confirmation (reject) primitive, close transport → Sta1
	AE5            // Issue transport connection response primitive; start ARTIM → Sta2
	AE6            // Stop ARTIM; if RQ acceptable issue A-ASSOCIATE indication → Sta3, else send A-ASSOCIATE-RJ, start ARTIM → Sta13
	AE7            // Send A-ASSOCIATE-AC PDU → Sta6
	AE8            // Send A-ASSOCIATE-RJ PDU, start ARTIM → Sta13
	DT1            // Send P-DATA-TF PDU → Sta6
	DT2            // Send P-DATA indication primitive → Sta6
	AR1            // Send A-RELEASE-RQ PDU → Sta7
	AR2            // Issue A-RELEASE indication primitive → Sta8
	AR3            // Issue A-RELEASE confirmation primitive, close transport → Sta1
	AR4            // Issue A-RELEASE-RP PDU, start ARTIM → Sta13
	AR5            // Stop ARTIM → Sta1
	AR6            // Issue P-DATA indication → Sta7
	AR7            // Issue P-DATA-TF PDU → Sta8
	AR8            // Issue A-RELEASE indication (release collision): requestor → Sta9, acceptor → Sta10
	AR9            // Send A-RELEASE-RP PDU → Sta11
	AR10           // Issue A-RELEASE confirmation primitive → Sta12
	AA1            // Send A-ABORT PDU (service-user source), (re)start ARTIM → Sta13
	AA2            // Stop ARTIM if running, close transport → Sta1
	AA3            // Issue A-ABORT / A-P-ABORT indication, close transport → Sta1
	AA4            // Issue A-P-ABORT indication → Sta1
	AA5            // Stop ARTIM → Sta1
	AA6            // Ignore PDU → Sta13
	AA7            // Send A-ABORT PDU → Sta13
	AA8            // Send A-ABORT PDU (service-provider source), issue A-P-ABORT indication, start ARTIM → Sta13
)

var actionNames = [...]string{
	ActNone: "none", AE1: "AE-1", AE2: "AE-2", AE3: "AE-3", AE4: "AE-4", AE5: "AE-5", AE6: "AE-6",
	AE7: "AE-7", AE8: "AE-8", DT1: "DT-1", DT2: "DT-2", AR1: "AR-1", AR2: "AR-2", AR3: "AR-3",
	AR4: "AR-4", AR5: "AR-5", AR6: "AR-6", AR7: "AR-7", AR8: "AR-8", AR9: "AR-9", AR10: "AR-10",
	AA1: "AA-1", AA2: "AA-2", AA3: "AA-3", AA4: "AA-4", AA5: "AA-5", AA6: "AA-6", AA7: "AA-7", AA8: "AA-8",
}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// transitions is PS3.8 Table 9-10, one row per event, columns Sta1..Sta13.
// Index 0 of each row is unused.
var transitions = [numEvents][numStates]Action{
	//          Sta1 Sta2 Sta3 Sta4 Sta5 Sta6 Sta7 Sta8 Sta9 Sta10 Sta11 Sta12 Sta13
	Evt1:  {0, AE1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	Evt2:  {0, 0, 0, 0, AE2, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	Evt3:  {0, 0, AA1, AA8, 0, AE3, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA6},
	Evt4:  {0, 0, AA1, AA8, 0, AE4, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA6},
	Evt5:  {0, AE5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	Evt6:  {0, 0, AE6, AA8, 0, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA7},
	Evt7:  {0, 0, 0, AE7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	Evt8:  {0, 0, 0, AE8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	Evt9:  {0, 0, 0, 0, 0, 0, DT1, 0, AR7, 0, 0, 0, 0, 0},
	Evt10: {0, 0, AA1, AA8, 0, AA8, DT2, AR6, AA8, AA8, AA8, AA8, AA8, AA6},
	Evt11: {0, 0, 0, 0, 0, 0, AR1, 0, 0, 0, 0, 0, 0, 0},
	Evt12: {0, 0, AA1, AA8, 0, AA8, AR2, AR8, AA8, AA8, AA8, AA8, AA8, AA6},
	Evt13: {0, 0, AA1, AA8, 0, AA8, AA8, AR3, AA8, AA8, AR10, AR3, AA8, AA6},
	Evt14: {0, 0, 0, 0, 0, 0, 0, 0, AR4, AR9, 0, 0, AR4, 0},
	Evt15: {0, 0, 0, AA1, AA2, AA1, AA1, AA1, AA1, AA1, AA1, AA1, AA1, 0},
	Evt16: {0, 0, AA2, AA3, 0, AA3, AA3, AA3, AA3, AA3, AA3, AA3, AA3, AA2},
	Evt17: {0, 0, AA5, AA4, AA4, AA4, AA4, AA4, AA4, AA4, AA4, AA4, AA4, AR5},
	Evt18: {0, 0, AA2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, AA2},
	Evt19: {0, 0, AA1, AA8, 0, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA8, AA7},
}

// Lookup returns the action of PS3.8 Table 9-10 for event e in state s, or
// ActNone if the table has no entry.
func Lookup(e FSMEvent, s State) Action {
	if e < Evt1 || e > Evt19 || s < Sta1 || s > Sta13 {
		return ActNone
	}
	return transitions[e][s]
}

// nextState is the state each action leads to (PS3.8 Tables 9-6 to 9-9);
// AE6 and AR8 depend on more than the action and are resolved by Step.
var nextState = [...]State{
	AE1: Sta4, AE2: Sta5, AE3: Sta6, AE4: Sta1, AE5: Sta2, AE6: Sta3, AE7: Sta6, AE8: Sta13,
	DT1: Sta6, DT2: Sta6,
	AR1: Sta7, AR2: Sta8, AR3: Sta1, AR4: Sta13, AR5: Sta1, AR6: Sta7, AR7: Sta8, AR8: Sta9,
	AR9: Sta11, AR10: Sta12,
	AA1: Sta13, AA2: Sta1, AA3: Sta1, AA4: Sta1, AA5: Sta1, AA6: Sta13, AA7: Sta13, AA8: Sta13,
}

// Machine is the upper layer state machine of one association. It is pure:
// Step computes the action and the next state and performs no I/O; the
// caller executes the action. The zero Machine is in Sta1. A Machine is not
// safe for concurrent use.
type Machine struct {
	State     State
	Requestor bool // true on the association-requestor (client) side
}

// Step applies event e. For AE6 the caller says whether the A-ASSOCIATE-RQ
// is acceptable to the service provider (acceptable); it is ignored for
// other actions. An event the table does not allow in the current state
// returns ActNone and an error, and leaves the state unchanged.
func (m *Machine) Step(e FSMEvent, acceptable bool) (Action, error) {
	if m.State == 0 {
		m.State = Sta1
	}
	a := Lookup(e, m.State)
	if a == ActNone {
		return ActNone, fmt.Errorf("dimse: %v not allowed in %v", e, m.State)
	}
	next := nextState[a]
	switch a {
	case AE6:
		if !acceptable {
			next = Sta13
		}
	case AR8:
		if !m.Requestor {
			next = Sta10
		}
	}
	m.State = next
	return a, nil
}
