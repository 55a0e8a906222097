package dimse

import "testing"

// TestTransitionTable checks the cells of PS3.8 Table 9-10 that the engine
// relies on, one subtest per cell.
func TestTransitionTable(t *testing.T) {
	cells := []struct {
		e    FSMEvent
		s    State
		act  Action
		next State
	}{
		// Association establishment, requestor side.
		{Evt1, Sta1, AE1, Sta4},
		{Evt2, Sta4, AE2, Sta5},
		{Evt3, Sta5, AE3, Sta6},
		{Evt4, Sta5, AE4, Sta1},
		{Evt16, Sta5, AA3, Sta1},
		{Evt17, Sta5, AA4, Sta1},
		{Evt15, Sta4, AA2, Sta1},
		// Acceptor side.
		{Evt5, Sta1, AE5, Sta2},
		{Evt6, Sta2, AE6, Sta3},
		{Evt7, Sta3, AE7, Sta6},
		{Evt8, Sta3, AE8, Sta13},
		{Evt18, Sta2, AA2, Sta1},
		{Evt17, Sta2, AA5, Sta1},
		{Evt16, Sta2, AA2, Sta1},
		{Evt10, Sta2, AA1, Sta13}, // P-DATA before association
		{Evt12, Sta2, AA1, Sta13},
		{Evt3, Sta2, AA1, Sta13},
		{Evt19, Sta2, AA1, Sta13},
		{Evt15, Sta3, AA1, Sta13},
		// Data transfer.
		{Evt9, Sta6, DT1, Sta6},
		{Evt10, Sta6, DT2, Sta6},
		{Evt6, Sta6, AA8, Sta13},
		{Evt3, Sta6, AA8, Sta13},
		{Evt19, Sta6, AA8, Sta13},
		{Evt13, Sta6, AA8, Sta13},
		{Evt15, Sta6, AA1, Sta13},
		{Evt16, Sta6, AA3, Sta1},
		{Evt17, Sta6, AA4, Sta1},
		// Release, requestor.
		{Evt11, Sta6, AR1, Sta7},
		{Evt10, Sta7, AR6, Sta7},
		{Evt13, Sta7, AR3, Sta1},
		// Release, acceptor.
		{Evt12, Sta6, AR2, Sta8},
		{Evt9, Sta8, AR7, Sta8},
		{Evt14, Sta8, AR4, Sta13},
		{Evt10, Sta8, AA8, Sta13},
		// Sta13.
		{Evt17, Sta13, AR5, Sta1},
		{Evt18, Sta13, AA2, Sta1},
		{Evt10, Sta13, AA6, Sta13},
		{Evt12, Sta13, AA6, Sta13},
		{Evt6, Sta13, AA7, Sta13},
		{Evt19, Sta13, AA7, Sta13},
		{Evt16, Sta13, AA2, Sta1},
		// Release collision.
		{Evt14, Sta9, AR9, Sta11},
		{Evt13, Sta11, AR3, Sta1},
		{Evt13, Sta10, AR10, Sta12},
		{Evt14, Sta12, AR4, Sta13},
	}
	for _, c := range cells {
		t.Run(c.e.String()[:5]+"/"+c.s.String()[:5], func(t *testing.T) {
			m := Machine{State: c.s, Requestor: true}
			act, err := m.Step(c.e, true)
			if err != nil || act != c.act || m.State != c.next {
				t.Fatalf("%v in %v: got %v → %v (%v), want %v → %v", c.e, c.s, act, m.State, err, c.act, c.next)
			}
		})
	}
}

func TestTransitionSpecialCases(t *testing.T) {
	// AE-6 with an unacceptable A-ASSOCIATE-RQ goes to Sta13.
	m := Machine{State: Sta2}
	if act, _ := m.Step(Evt6, false); act != AE6 || m.State != Sta13 {
		t.Fatalf("AE-6 reject: %v %v", act, m.State)
	}
	// AR-8: the requestor goes to Sta9, the acceptor to Sta10.
	for _, req := range []bool{true, false} {
		m := Machine{State: Sta7, Requestor: req}
		act, _ := m.Step(Evt12, true)
		want := Sta10
		if req {
			want = Sta9
		}
		if act != AR8 || m.State != want {
			t.Fatalf("AR-8 requestor=%v: %v %v", req, act, m.State)
		}
	}
	// Empty cells: local primitives at the wrong time are errors.
	for _, c := range []struct {
		e FSMEvent
		s State
	}{{Evt9, Sta2}, {Evt11, Sta7}, {Evt7, Sta6}, {Evt1, Sta6}, {Evt14, Sta6}} {
		m := Machine{State: c.s}
		if act, err := m.Step(c.e, true); err == nil || act != ActNone || m.State != c.s {
			t.Errorf("%v in %v allowed: %v", c.e, c.s, act)
		}
	}
	// The zero Machine is Sta1.
	var z Machine
	if act, _ := z.Step(Evt5, true); act != AE5 || z.State != Sta2 {
		t.Fatalf("zero machine: %v %v", act, z.State)
	}
}

// Every PDU-driven event has an entry in every state but Sta1 and Sta4
// (PS3.8 Table 9-10 is complete for received PDUs).
func TestTableCompleteForPDUs(t *testing.T) {
	for _, e := range []FSMEvent{Evt3, Evt4, Evt6, Evt10, Evt12, Evt13, Evt16, Evt19} {
		for s := Sta2; s <= Sta13; s++ {
			if s == Sta4 {
				continue
			}
			if Lookup(e, s) == ActNone {
				t.Errorf("no action for %v in %v", e, s)
			}
		}
	}
	if Sta6.String() != "Sta6 (association established)" || AA8.String() != "AA-8" || Evt10.String()[:5] != "Evt10" {
		t.Errorf("names: %v %v %v", Sta6, AA8, Evt10)
	}
}
