package consent

import (
	"encoding/json"
	"reflect"
	"testing"
)

var parseStoredCases = []string{
	`{"s":"granted","c":"chg-1","t":1732262400000,"b":"CONSENT","src":"web","n":"3"}`,
	`{"s":"granted","c":"chg-1","t":1732262400000,"e":1732262500000,"b":"CONSENT","x":["user.health","user.location"],"src":"web","n":"3"}`,
	`{"s":"denied","c":"c","t":1}`,
	`{"c":"erase-1","t":1732262400000}`,
	`{"t":5,"c":"x","s":"withdrawn"}`,
	`{"s":"granted","c":"c","t":1,"x":[]}`,
	`{"s":"granted","c":"ü-é","t":1}`,
	`{"s":"granted","c":"a\u003cb","t":1}`,
	`{"s":"granted","c":"a\"b","t":1}`,
	`{"s":"granted","c":"c","t":1.5}`,
	`{"s":"granted","c":"c","t":1e3}`,
	`{"s":"granted","c":"c","t":01}`,
	`{"s":"granted","c":"c","t":-0}`,
	`{"s":"granted","c":"c","t":99999999999999999999}`,
	`{"s":"granted","c":"c","t":1,"zz":2}`,
	`{"s":null,"c":"c","t":1}`,
	`{ "s": "granted", "c": "c", "t": 1 }`,
	`{"s":"granted","c":"c","t":1}x`,
	`{"s":"granted","c":"c","t":1,}`,
	`{"s":"granted","c":"c","t":1,"t":2}`,
	`{"s":"granted","c":"` + "\xff" + `","t":1}`,
	`{"s":"granted","c":"c","t":1,"x":["a",]}`,
	`{"s":"granted","c":"c","t":1,"x":"a"}`,
	`{}`, `{`, ``, `[]`, `null`, `"s"`,
}

// TestParseStoredAgreesWithJSON: whenever the fast parser accepts a stored
// value, encoding/json decodes it to the same thing; it never accepts what
// encoding/json rejects.
func TestParseStoredAgreesWithJSON(t *testing.T) {
	t.Parallel()
	fast := 0
	for _, raw := range parseStoredCases {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			checkParseStored(t, raw)
		})
		if _, ok := parseStored(raw); ok {
			fast++
		}
	}
	if fast < 7 {
		t.Errorf("fast path took only %d of the well-formed values", fast)
	}
}

func checkParseStored(t *testing.T, raw string) {
	got, ok := parseStored(raw)
	if !ok {
		return
	}
	var want storedPurpose
	if err := json.Unmarshal([]byte(raw), &want); err != nil {
		t.Fatalf("fast path accepts %q, encoding/json rejects it: %v", raw, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: fast %+v, json %+v", raw, got, want)
	}
}

func FuzzParseStored(f *testing.F) {
	for _, c := range parseStoredCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkParseStored(t, raw) })
}
