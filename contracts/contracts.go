package contracts

import (
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

var (
	// ErrUnknownContract means no embedded contract has the name.
	ErrUnknownContract = errors.New("contracts: unknown contract")
	// ErrUnknownFunction means the ABI has no entry function of that name.
	ErrUnknownFunction = errors.New("contracts: unknown function")
	// ErrUnknownType means a type, resource or event is not in the ABI.
	ErrUnknownType = errors.New("contracts: unknown type")
	// ErrBadArgs means JSON arguments do not match the function's schema.
	ErrBadArgs = errors.New("contracts: bad arguments")
	// ErrBadValue means bytes are not a canonical encoding of the type.
	ErrBadValue = errors.New("contracts: bad encoded value")
	// ErrBadABI means an abi.json is malformed.
	ErrBadABI = errors.New("contracts: bad ABI")
)

// Contract is one compiled demo contract.
type Contract struct {
	// Name is the contract's name: "chat", "editor" or "movecraft".
	Name string
	// Wasm is the compiled module (scraft ABI v1). Do not modify it.
	Wasm []byte
	// ABI describes its entry functions, resources and events.
	*ABI
}

//go:embed chat/chat.wasm chat/abi.json
//go:embed editor/editor.wasm editor/abi.json
//go:embed movecraft/movecraft.wasm movecraft/abi.json
var files embed.FS

// names lists the embedded contracts, sorted.
var names = []string{"chat", "editor", "movecraft"}

var (
	loadOnce sync.Once
	loaded   map[string]*Contract
	loadErr  error
)

func load() {
	loaded = make(map[string]*Contract, len(names))
	for _, n := range names {
		wasm, err := files.ReadFile(n + "/" + n + ".wasm")
		if err != nil {
			loadErr = fmt.Errorf("contracts: %s: %w", n, err)
			return
		}
		raw, err := files.ReadFile(n + "/abi.json")
		if err != nil {
			loadErr = fmt.Errorf("contracts: %s: %w", n, err)
			return
		}
		abi, err := ParseABI(raw)
		if err != nil {
			loadErr = err
			return
		}
		if abi.Name != n {
			loadErr = fmt.Errorf("%w: %s/abi.json names contract %q", ErrBadABI, n, abi.Name)
			return
		}
		loaded[n] = &Contract{Name: n, Wasm: wasm, ABI: abi}
	}
}

// Names returns the names of the embedded contracts, sorted.
func Names() []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	return out
}

// Get returns the embedded contract called name. The Contract is shared:
// callers must not modify it.
func Get(name string) (*Contract, error) {
	loadOnce.Do(load)
	if loadErr != nil {
		return nil, loadErr
	}
	c, ok := loaded[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownContract, name, strings.Join(names, ", "))
	}
	return c, nil
}
