//go:build scraft_misbehave

package cluster

import (
	"fmt"
	"os"
)

// A node built with -tags scraft_misbehave misbehaves as SCRAFT_MISBEHAVE
// says (parseMisbehaviour: tamper:HEIGHT, forgejoin:HEIGHT,
// censor:ADDRESS, falsereport:HEIGHT, equivocate:HEIGHT; isolate and
// noattest act in the transport), for end-to-end tests of
// accountability. The released
// binary is built without the tag and has no such setting.
func init() {
	spec := os.Getenv("SCRAFT_MISBEHAVE")
	if spec == "" {
		return
	}
	mb, err := parseMisbehaviour(spec)
	if err != nil {
		panic(fmt.Sprintf("SCRAFT_MISBEHAVE: %v", err))
	}
	misbehaving.Store(mb)
}
