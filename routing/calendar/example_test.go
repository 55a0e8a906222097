package calendar

import (
	"fmt"
	"time"
)

func ExampleFrench() {
	h := French(FrenchOptions{AlsaceMoselle: true, RemovedNames: []string{LundiDePentecote}})
	for _, d := range []string{"2026-04-03", "2026-05-25", "2026-12-26"} {
		t, _ := time.ParseInLocation("2006-01-02", d, Paris())
		name, ok := h.Holiday(t.Add(10 * time.Hour))
		fmt.Printf("%s %q %v\n", d, name, ok)
	}
	// Output:
	// 2026-04-03 "Vendredi saint" true
	// 2026-05-25 "" false
	// 2026-12-26 "Saint-Étienne" true
}

func ExampleParseWindow() {
	w, err := ParseWindow("lun-ven 20:00-08:00")
	if err != nil {
		panic(err)
	}
	fri := time.Date(2026, 3, 27, 22, 0, 0, 0, Paris())
	fmt.Println(w.Contains(fri), w.Contains(fri.Add(8*time.Hour)), w.Contains(fri.Add(24*time.Hour)))
	fmt.Println(Weekend(fri, nil), Night(fri, MustTimeOfDay("20:00"), MustTimeOfDay("08:00"), nil))
	// Output:
	// true true false
	// false true
}
