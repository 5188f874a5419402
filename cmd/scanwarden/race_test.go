//go:build race

package main

// raceEnabled: this test binary was built with -race, so the daemons the
// kernel tests build are too, and a data race in them fails the test.
const raceEnabled = true
