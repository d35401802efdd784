//go:build race

package proctest

// raceEnabled builds the commands under test with the race detector when
// the tests themselves run with -race.
const raceEnabled = true
