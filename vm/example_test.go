package vm_test

import (
	"context"
	"fmt"
	"os"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm"
)

// Deploy a contract once, then call its entry functions: each call runs
// over a private overlay of the state and reports what it would change.
func Example() {
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.DefaultConfig())
	if err != nil {
		panic(err)
	}
	defer e.Close(ctx)

	wasm, err := os.ReadFile("testdata/abi.wasm")
	if err != nil {
		panic(err)
	}
	m, err := e.Deploy(ctx, wasm)
	if err != nil {
		panic(err)
	}
	r := m.Call(ctx, protocol.State{}, vm.Call{Function: "echo", Args: []byte("hi"), Gas: 1_000_000})
	fmt.Println(r.Status, string(r.Output), r.ChangeSet.Len())

	r = m.Call(ctx, protocol.State{}, vm.Call{Function: "fail", Gas: 1_000_000})
	fmt.Println(r.Status, r.AbortCode, r.Message)

	r = m.Call(ctx, protocol.State{}, vm.Call{Function: "loop", Gas: 1_000_000})
	fmt.Println(r.Status, r.GasUsed)
	// Output:
	// ok hi 0
	// abort 42 boom
	// out_of_gas 1000000
}
