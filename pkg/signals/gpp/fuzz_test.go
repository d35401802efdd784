package gpp

import (
	"testing"
)

var fuzzSeeds = []string{
	"DBAA", "DBABM~" + tcfA, "DBABMA~" + tcfA, "DBACNY~" + tcfB + "~1YNN", "DBABjw~" + tcfC + "~1YNN",
	"DBACOeA~" + tcfB + "~" + tcfC + "~1YNN", "DBABTA~1YNN", "DBABTA~1---",
	"DBABLA~BAAAVVVVUQA.QA", "DBABLA~CAAAVVVVAFBA.QA", "DBABLA~CAAAVVVVVVRA.QA", "DBABLA~CAAAAAAAAQRA.QA",
	"DBABLA~CVVVkkkkkpFY.YA", "DBABLA~BVVVkkkkkpFY", "DBABLA~CVQqAAAACg", "DBABLA~CAAAAAAAAQA.QA",
	"DBACOcGA~CPSG_8APSG_8ANwAAAENAAFgAAAAAAAAAAAAAAAAAAAA.IAAA.YAAAAAAAAAAA~BPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---~BAAAAAAAAQA.QA~BAAAAABA.QA~BAAAABA~BAAAAEA.QA~BAAAAAQA~BAAAAAEA.QA~BAAAAABA~BAAAAABA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAABAA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BAAAAABA.QA~BAAAAAAAQA.QA~BAAAAAQA.QA~BAAAAAQA.QA~BQAA.QA~BQAA.AAA~BQAA.AAA~BQAA.AAA",
	"DBACOeA~~1YNN", "DBABLA", "DCAA",
}

func init() {
	// Every state vector of parse_test.go, behind its header.
	for id, raw := range map[int]string{8: "BVWSSSVY.YA", 9: "BVWSSVY", 10: "BVWSSVg.YA", 11: "BVVkklWA", 12: "BVWSSZFg.YA",
		13: "BVWSSZlY", 14: "BVWSSZFY.YA", 15: "BVWSSRpFYA.YA", 16: "BVWSSVWA.YA", 17: "BVWSSSSVYA.YA", 18: "BVVkklWA.YA",
		19: "BVWSSVWA.YA", 20: "BVWSSZFY.YA", 21: "BVWSSRklWA.YA", 22: "BVWSSVWA.YA", 23: "BVWSSVWA.YA", 24: "BVVU.YA",
		25: "BVVV.kkk", 26: "BVVV.kkk", 27: "BVVV.kkk"} {
		fuzzSeeds = append(fuzzSeeds, encodeHeader([]int{id}, true)+"~"+raw)
	}
}

// FuzzParse: Parse never panics; a result satisfies the invariants and its
// values re-encode (test encoder) to a string that parses to the same
// values.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := Parse(s)
		checkInvariants(t, s, g, err)
	})
}

// FuzzParseUSP: ParseUSP never panics, accepts exactly version '1' followed
// by three of 'Y', 'N', '-', and returns the characters it read.
func FuzzParseUSP(f *testing.F) {
	for _, s := range []string{"1YNN", "1NYN", "1---", "1YYN", "1Y--", "2YNN", "1ynn", "", "1YN", "1YNNN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUSP(s)
		ok := len(s) == 4 && s[0] == '1'
		for i := 1; ok && i < 4; i++ {
			ok = s[i] == 'Y' || s[i] == 'N' || s[i] == '-'
		}
		if ok != (err == nil) {
			t.Fatalf("ParseUSP(%q) = %+v, %v", s, u, err)
		}
		if err != nil {
			if u != (USP{}) {
				t.Fatalf("partial result %+v", u)
			}
			return
		}
		if u.Version != 1 || u.Notice != s[1] || u.OptOutSale != s[2] || u.LSPACovered != s[3] {
			t.Fatalf("ParseUSP(%q) = %+v", s, u)
		}
	})
}
