package calendar

import (
	"testing"
	"time"
)

// easterOudin is a second, independent Easter computation (Oudin 1940, as
// given by Claus Tøndering's calendar FAQ) to cross-check Easter.
func easterOudin(y int) (time.Month, int) {
	g := y % 19
	c := y / 100
	h := (c - c/4 - (8*c+13)/25 + 19*g + 15) % 30
	i := h - (h/28)*(1-(29/(h+1))*((21-g)/11))
	j := (y + y/4 + i + 2 - c + c/4) % 7
	l := i - j
	m := 3 + (l+40)/44
	d := l + 28 - 31*(m/4)
	return time.Month(m), d
}

func TestEasterKnownDates(t *testing.T) {
	// Published dates of Easter Sunday.
	known := map[int]string{
		2000: "2000-04-23", 2019: "2019-04-21", 2024: "2024-03-31", 2025: "2025-04-20",
		2026: "2026-04-05", 2027: "2027-03-28", 2028: "2028-04-16", 2029: "2029-04-01",
		2030: "2030-04-21", 2038: "2038-04-25", 2285: "2285-03-22",
	}
	for y, want := range known {
		m, d := Easter(y)
		if got := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format("2006-01-02"); got != want {
			t.Errorf("Easter(%d) = %s, want %s", y, got, want)
		}
	}
}

func TestEasterCrossCheck(t *testing.T) {
	for y := 1583; y <= 4099; y++ {
		m1, d1 := Easter(y)
		m2, d2 := easterOudin(y)
		if m1 != m2 || d1 != d2 {
			t.Fatalf("year %d: Meeus %v %d, Oudin %v %d", y, m1, d1, m2, d2)
		}
		if m1 < time.March || m1 > time.April || (m1 == time.March && d1 < 22) || (m1 == time.April && d1 > 25) {
			t.Fatalf("year %d: Easter %v %d outside 22 March – 25 April", y, m1, d1)
		}
	}
}

func TestFrenchHolidays2024To2030(t *testing.T) {
	// Moveable feasts per year: lundi de Pâques, Ascension, lundi de Pentecôte.
	moveable := map[int][3]string{
		2024: {"2024-04-01", "2024-05-09", "2024-05-20"},
		2025: {"2025-04-21", "2025-05-29", "2025-06-09"},
		2026: {"2026-04-06", "2026-05-14", "2026-05-25"},
		2027: {"2027-03-29", "2027-05-06", "2027-05-17"},
		2028: {"2028-04-17", "2028-05-25", "2028-06-05"},
		2029: {"2029-04-02", "2029-05-10", "2029-05-21"},
		2030: {"2030-04-22", "2030-05-30", "2030-06-10"},
	}
	h := French(FrenchOptions{})
	for y := 2024; y <= 2030; y++ {
		mv := moveable[y]
		want := map[string]string{
			time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02"): JourDeLAn,
			mv[0]: LundiDePaques,
			time.Date(y, 5, 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02"): FeteDuTravail,
			time.Date(y, 5, 8, 0, 0, 0, 0, time.UTC).Format("2006-01-02"): Victoire1945,
			mv[1]: Ascension,
			mv[2]: LundiDePentecote,
			time.Date(y, 7, 14, 0, 0, 0, 0, time.UTC).Format("2006-01-02"):  FeteNationale,
			time.Date(y, 8, 15, 0, 0, 0, 0, time.UTC).Format("2006-01-02"):  Assomption,
			time.Date(y, 11, 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02"):  Toussaint,
			time.Date(y, 11, 11, 0, 0, 0, 0, time.UTC).Format("2006-01-02"): Armistice1918,
			time.Date(y, 12, 25, 0, 0, 0, 0, time.UTC).Format("2006-01-02"): Noel,
		}
		got := h.Year(y)
		if len(got) != 11 {
			t.Errorf("%d: %d holidays, want 11: %v", y, len(got), got)
		}
		for _, hd := range got {
			k := hd.Date.Format("2006-01-02")
			if want[k] != hd.Name {
				t.Errorf("%d: %s %q, want %q", y, k, hd.Name, want[k])
			}
		}
		// Every day of the year: Holiday agrees with the table, at noon
		// and at 00:30 Paris time (23:30 UTC the day before).
		for d := time.Date(y, 1, 1, 12, 0, 0, 0, Paris()); d.Year() == y; d = d.AddDate(0, 0, 1) {
			k := d.Format("2006-01-02")
			for _, inst := range []time.Time{d, time.Date(d.Year(), d.Month(), d.Day(), 0, 30, 0, 0, Paris()).UTC()} {
				name, ok := h.Holiday(inst)
				if ok != (want[k] != "") || name != want[k] {
					t.Errorf("Holiday(%s) = %q %v, want %q", inst.Format(time.RFC3339), name, ok, want[k])
				}
			}
		}
	}
}

func TestFrenchOptions(t *testing.T) {
	p := Paris()
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 10, 0, 0, 0, p) }
	alsace := French(FrenchOptions{AlsaceMoselle: true})
	solidarite := French(FrenchOptions{RemovedNames: []string{"lundi de pentecôte"}})
	custom := French(FrenchOptions{
		Extra:   []ExtraHoliday{{Day{2026, time.May, 15}, "Pont de l'Ascension"}, {Day{0, time.June, 21}, "Fête du site"}},
		Removed: []Day{{2026, time.November, 11}, {0, time.August, 15}},
	})
	national := French(FrenchOptions{})
	cases := []struct {
		h    *Holidays
		t    time.Time
		name string
		ok   bool
	}{
		{alsace, at(2025, 4, 18), VendrediSaint, true},
		{national, at(2025, 4, 18), "", false},
		{alsace, at(2025, 12, 26), SaintEtienne, true},
		{national, at(2025, 12, 26), "", false},
		{alsace, at(2026, 4, 3), VendrediSaint, true},
		{solidarite, at(2026, 5, 25), "", false},
		{solidarite, at(2026, 5, 14), Ascension, true},
		{custom, at(2026, 5, 15), "Pont de l'Ascension", true},
		{custom, at(2027, 5, 15), "", false},
		{custom, at(2027, 6, 21), "Fête du site", true},
		{custom, at(2026, 11, 11), "", false},
		{custom, at(2027, 11, 11), Armistice1918, true},
		{custom, at(2030, 8, 15), "", false},
		{nil, at(2026, 1, 1), "", false},
		// The date is taken in the holidays' location: 1 Jan 2026 00:30 Paris is 31 Dec UTC.
		{national, time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), JourDeLAn, true},
		{French(FrenchOptions{Location: time.UTC}), time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), "", false},
	}
	for i, c := range cases {
		name, ok := c.h.Holiday(c.t)
		if name != c.name || ok != c.ok {
			t.Errorf("case %d (%s): got %q %v, want %q %v", i, c.t, name, ok, c.name, c.ok)
		}
	}
	if n := len(alsace.Year(2026)); n != 13 {
		t.Errorf("Alsace-Moselle 2026: %d holidays, want 13", n)
	}
}
