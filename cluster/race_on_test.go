//go:build race

package cluster

// raceEnabled slows everything down several times: tests widen timeouts.
const raceEnabled = true
