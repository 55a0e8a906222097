package webapp

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestI18nKeys: the French and English dictionaries have the same keys,
// and every key the pages ask t() for is in them.
func TestI18nKeys(t *testing.T) {
	b, err := fs.ReadFile(assetFS, "assets/static/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	keyRE := regexp.MustCompile(`(?:^|[\s,{])'?([A-Za-z][\w-]*)'?:\s*'`)
	block := func(lang string) []string {
		i := strings.Index(src, "  "+lang+": {")
		if i < 0 {
			t.Fatalf("no %s dictionary", lang)
		}
		end := strings.Index(src[i:], "\n  },")
		var keys []string
		for _, m := range keyRE.FindAllStringSubmatch(src[i+len(lang)+5:i+end], -1) {
			keys = append(keys, m[1])
		}
		slices.Sort(keys)
		return keys
	}
	fr, en := block("fr"), block("en")
	if len(fr) < 100 {
		t.Fatalf("only %d French keys found", len(fr))
	}
	for _, k := range fr {
		if _, ok := slices.BinarySearch(en, k); !ok {
			t.Errorf("%q: French only", k)
		}
	}
	for _, k := range en {
		if _, ok := slices.BinarySearch(fr, k); !ok {
			t.Errorf("%q: English only", k)
		}
	}
	useRE := regexp.MustCompile(`\bt\('([\w-]+)'\)`)
	fs.WalkDir(assetFS, "assets/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, _ := fs.ReadFile(assetFS, p)
		for _, m := range useRE.FindAllStringSubmatch(string(b), -1) {
			if _, ok := slices.BinarySearch(fr, m[1]); !ok {
				t.Errorf("%s: t(%q) is not translated", p, m[1])
			}
		}
		return nil
	})
}
