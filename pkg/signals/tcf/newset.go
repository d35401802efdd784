package tcf

// NewSet returns the Set of the given ids (in any order, duplicates
// allowed). Ids outside 1..65535 are an error of the caller: NewSet panics
// on them, as a TC string can never hold them. It is for building a
// TCString by hand (tests, explain output); Parse builds its own.
func NewSet(ids ...int) Set {
	rs := make([]span, 0, len(ids))
	for _, id := range ids {
		if id < 1 || id > 0xFFFF {
			panic("tcf.NewSet: id out of 1..65535")
		}
		rs = append(rs, span{uint16(id), uint16(id)})
	}
	return newSet(rs)
}
