// Command findbench measures the query engine on a large archive: it fills
// a Badger index through storage.Index.PutInstance (no blobs, no DIMSE) and
// times study-level queries through query.Engine, the path a C-FIND takes
// after parsing its identifier.
//
//	go run ./bench/findbench -dir /tmp/findbench -studies 10000 -per-study 100
//
// Re-running with the same -dir reuses the archive (-fill=false is implied
// when the index already holds the requested instances).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/relais-health/relais/bench/internal/machine"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/badgerindex"
)

var surnames = []string{"MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
	"SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD", "BONNET", "DUPONT",
	"LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFEVRE", "FAURE", "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER",
	"GARNIER", "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT", "MORIN", "NICOLAS",
	"HENRY", "ROUSSEL", "MATHIEU", "GAUTIER", "MASSON", "SMITH", "SMYTHE", "SCHMIDT", "YAMADA", "NGUYEN", "DIALLO", "KONE"}
var given = []string{"JEAN", "MARIE", "PIERRE", "ANNE", "LOUIS", "CLAIRE", "PAUL", "SOPHIE", "JACQUES", "JULIE", "HUGO", "EMMA"}
var modalities = []string{"CT", "MR", "CR", "US", "DX", "MG", "PT", "NM", "XA", "SR"}

func main() {
	dir := flag.String("dir", "", "index directory (required; reused if it exists)")
	studies := flag.Int("studies", 10000, "studies to generate")
	perStudy := flag.Int("per-study", 100, "instances per study")
	runs := flag.Int("runs", 500, "queries per kind (the unindexed baseline runs runs/10); 0 skips the engine table")
	qido := flag.Int("qido", 0, "QIDO-RS requests per kind over HTTP (dicomweb.Server on loopback); 0 skips")
	clients := flag.Int("clients", 4, "concurrent QIDO-RS clients")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the QIDO-RS run to this file")
	quiet := flag.Float64("wait-quiet", 0, "before the QIDO-RS run, wait (up to -wait-max) until the machine is less busy than this fraction (0.3 = 30% of all cores); 0: do not wait")
	quietMax := flag.Duration("wait-max", 10*time.Minute, "longest wait for -wait-quiet")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "findbench: -dir is required")
		os.Exit(2)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ix, err := badgerindex.Open(*dir, badgerindex.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer ix.Close()
	st, _ := ix.Stats(ctx)
	want := int64(*studies) * int64(*perStudy)
	if st.Instances < want {
		t0 := time.Now()
		if err := fill(ctx, ix, *studies, *perStudy, st.Instances); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		st, _ = ix.Stats(ctx)
		fmt.Printf("filled: %d instances in %s (%.0f/s)\n", st.Instances, time.Since(t0).Round(time.Second), float64(want)/time.Since(t0).Seconds())
	}
	fmt.Printf("archive: %d patients, %d studies, %d series, %d instances; GOMAXPROCS %d\n\n", st.Patients, st.Studies, st.Series, st.Instances, runtime.GOMAXPROCS(0))
	if *runs > 0 {
		engineTable(ctx, ix, *studies, *runs)
	}
	if *qido > 0 {
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		note := ""
		if *quiet > 0 {
			note = machine.WaitQuiet(*quiet, *quietMax)
		}
		if err := runQIDO(ix, *studies, *qido, *clients, log, note); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// engineTable times study-level queries through query.Engine.
func engineTable(ctx context.Context, ix storage.Index, studies, runs int) {
	eng := &query.Engine{Index: ix}
	r := rand.New(rand.NewPCG(99, 1))
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	kinds := []struct {
		name string
		gen  func() []query.Key
	}{
		{"PatientName prefix (SUR*)", func() []query.Key {
			return []query.Key{key(dicom.TagPatientName, surnames[r.IntN(len(surnames))][:3]+"*")}
		}},
		{"PatientName surname^given*", func() []query.Key {
			return []query.Key{key(dicom.TagPatientName, surnames[r.IntN(len(surnames))]+"^"+given[r.IntN(len(given))]+"*")}
		}},
		{"StudyDate 7-day range", func() []query.Key {
			d := base.AddDate(0, 0, r.IntN(5*365))
			return []query.Key{key(dicom.TagStudyDate, d.Format("20060102")+"-"+d.AddDate(0, 0, 6).Format("20060102"))}
		}},
		{"StudyDate range + Modality", func() []query.Key {
			d := base.AddDate(0, 0, r.IntN(5*365))
			return []query.Key{key(dicom.TagStudyDate, d.Format("20060102")+"-"+d.AddDate(0, 0, 30).Format("20060102")), key(dicom.TagModalitiesInStudy, "MR")}
		}},
		{"AccessionNumber", func() []query.Key {
			return []query.Key{key(dicom.TagAccessionNumber, fmt.Sprintf("A%08d", r.IntN(studies)))}
		}},
		{"PatientID", func() []query.Key {
			return []query.Key{key(dicom.TagPatientID, fmt.Sprintf("PID%07d", r.IntN(studies/2)))}
		}},
		{"baseline: PatientName *SUFFIX (no index)", func() []query.Key {
			return []query.Key{key(dicom.TagPatientName, "*"+surnames[r.IntN(len(surnames))][2:]+"^*")}
		}},
	}
	fmt.Println("| study-level query | plan | p50 ms | p99 ms | max ms | mean rows |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, k := range kinds {
		var lat []time.Duration
		rows := 0
		plan := ""
		n := runs
		if strings.HasPrefix(k.name, "baseline") {
			n = max(runs/10, 1)
		}
		for i := 0; i < n; i++ {
			keys := k.gen()
			for _, rk := range returnKeys() {
				dup := false
				for _, mk := range keys {
					dup = dup || mk.Tag == rk.Tag
				}
				if !dup {
					keys = append(keys, rk)
				}
			}
			sort.Slice(keys, func(a, b int) bool { return keys[a].Tag < keys[b].Tag })
			q := &query.Query{Model: query.StudyRoot, Level: query.Study, Keys: keys}
			plan = query.Plan(q)
			ts, _ := dicom.LookupTransferSyntax(dicom.ExplicitVRLittleEndian)
			t0 := time.Now()
			err := eng.Find(ctx, q, func(row *query.Row) error {
				rows++
				_, err := query.EncodeRow(q, row, ts, "RELAIS") // what the SCP does per match
				return err
			})
			lat = append(lat, time.Since(t0))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
		fmt.Printf("| %s | %s | %s | %s | %s | %.1f |\n", k.name, plan, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), float64(rows)/float64(n))
	}
}

func key(t dicom.Tag, v string) query.Key { return query.Key{Tag: t, VR: dicom.LookupVR(t), Value: v} }

// returnKeys are what a PACS worklist asks for.
func returnKeys() []query.Key {
	var ks []query.Key
	for _, t := range []dicom.Tag{dicom.TagStudyInstanceUID, dicom.TagPatientName, dicom.TagPatientID, dicom.TagPatientBirthDate,
		dicom.TagStudyDate, dicom.TagStudyTime, dicom.TagAccessionNumber, dicom.TagStudyDescription, dicom.TagModalitiesInStudy,
		dicom.TagNumberOfStudyRelatedSeries, dicom.TagNumberOfStudyRelatedInstances} {
		ks = append(ks, query.Key{Tag: t, VR: dicom.LookupVR(t)})
	}
	return ks
}

// fill writes studies×perStudy instances (resuming after `have`): about
// two studies per patient, 1-4 series per study, dates over five years.
func fill(ctx context.Context, ix storage.Index, studies, perStudy int, have int64) error {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	n := int64(0)
	last := time.Now()
	for s := 0; s < studies; s++ {
		p := r.IntN(studies/2 + 1)
		pr := rand.New(rand.NewPCG(uint64(p), 7))
		name := surnames[pr.IntN(len(surnames))] + "^" + given[pr.IntN(len(given))]
		pid := fmt.Sprintf("PID%07d", p)
		study := fmt.Sprintf("1.2.826.0.1.3680043.10.1.%d", s)
		date := base.AddDate(0, 0, r.IntN(5*365)).Format("20060102")
		tm := fmt.Sprintf("%02d%02d%02d", r.IntN(24), r.IntN(60), r.IntN(60))
		nseries := 1 + r.IntN(4)
		mods := []string{modalities[r.IntN(len(modalities))], modalities[r.IntN(len(modalities))]}
		for i := 0; i < perStudy; i++ {
			n++
			if n <= have {
				continue
			}
			se := i % nseries
			series := fmt.Sprintf("%s.%d", study, se)
			sop := fmt.Sprintf("%s.%d", series, i)
			in := &storage.Instance{
				SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SeriesInstanceUID: series, StudyInstanceUID: study,
				PatientID: pid, TransferSyntaxUID: "1.2.840.10008.1.2.1", BlobKey: "bench/" + sop, Size: 525 << 10,
				ReceivedAt: time.Now().UTC(), CharacterSet: "ISO_IR 100",
				Attrs: map[string]string{
					"00100010": name, "00100020": pid, "00100030": "19600101", "00100040": "F",
					"00080020": date, "00080030": tm, "00080050": fmt.Sprintf("A%08d", s), "00081030": "EXAMEN " + mods[0],
					"0020000D": study, "0020000E": series, "00080060": mods[se%2], "00200011": fmt.Sprint(se + 1),
					"00080016": "1.2.840.10008.5.1.4.1.1.2", "00080018": sop, "00200013": fmt.Sprint(i + 1),
				},
			}
			if err := ix.PutInstance(ctx, in, 0); err != nil {
				return err
			}
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				fmt.Fprintf(os.Stderr, "  %d/%d instances\n", n, int64(studies)*int64(perStudy))
			}
		}
	}
	return nil
}
