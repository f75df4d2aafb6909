//go:build scraft_misbehave

package cluster

import (
	"fmt"
	"os"
)

// A node built with -tags scraft_misbehave lies when SCRAFT_MISBEHAVE
// names a misbehaviour (misbehaviour: tamper:HEIGHT, forgejoin:HEIGHT), for
// end-to-end tests of punishment. The released binary is built without the
// tag and has no such setting.
func init() {
	spec := os.Getenv("SCRAFT_MISBEHAVE")
	if spec == "" {
		return
	}
	f, err := misbehaviour(spec)
	if err != nil {
		panic(fmt.Sprintf("SCRAFT_MISBEHAVE: %v", err))
	}
	tamperHook.Store(&f)
}
