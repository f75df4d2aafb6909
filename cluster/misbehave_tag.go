//go:build scraft_misbehave

package cluster

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/scraft/scraft/protocol"
)

// A node built with -tags scraft_misbehave lies when SCRAFT_MISBEHAVE
// says so, for end-to-end tests of punishment:
//
//	SCRAFT_MISBEHAVE=tamper:HEIGHT  while leading, sign a wrong gas for the
//	                                entry at HEIGHT (once)
//
// The released binary is built without the tag and has no such setting.
func init() {
	spec := os.Getenv("SCRAFT_MISBEHAVE")
	if spec == "" {
		return
	}
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "tamper":
		h, err := strconv.ParseUint(arg, 10, 64)
		if err != nil || h == 0 {
			panic(fmt.Sprintf("SCRAFT_MISBEHAVE=%q: want tamper:HEIGHT", spec))
		}
		// Any leader in this process: a node process has one key.
		var mu sync.Mutex
		done := make(map[protocol.ChannelID]bool)
		f := tamperFunc(func(_ protocol.Address, b *protocol.Batch) bool {
			mu.Lock()
			defer mu.Unlock()
			if h < b.FirstHeight || h > b.LastHeight() || done[b.Channel] {
				return false
			}
			done[b.Channel] = true
			b.Results[h-b.FirstHeight].GasUsed++
			return true
		})
		tamperHook.Store(&f)
	default:
		panic(fmt.Sprintf("SCRAFT_MISBEHAVE=%q: unknown misbehaviour", spec))
	}
}
