package vm

import (
	"errors"
	"fmt"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

// Sentinel errors. Deploy failures are *DeployError values that wrap one of
// these; call failures are Results, never errors.
var (
	// ErrInvalidModule means the bytes are not a valid WASM module.
	ErrInvalidModule = errors.New("vm: invalid module")
	// ErrABI means the module is valid WASM but does not follow the scraft
	// ABI v1 (imports, exports, memory, entry signatures).
	ErrABI = errors.New("vm: module does not follow the scraft ABI")
	// ErrNotDeterministic means the module uses something whose result or
	// state could differ between nodes or outlive a call: floats, table
	// mutation, dropped segments.
	ErrNotDeterministic = errors.New("vm: module is not deterministic")
	// ErrStart means the module's start function failed.
	ErrStart = errors.New("vm: start function failed")
	// ErrClosed means the Engine was closed.
	ErrClosed = errors.New("vm: engine closed")
	// ErrUnsupportedPlatform means wazero has no compiler for this
	// platform; scraft never falls back to the interpreter because the two
	// engines are not bit-for-bit interchangeable.
	ErrUnsupportedPlatform = errors.New("vm: the wazero compiler does not support this platform")
)

// DeployError is why Deploy refused a module. Status is always
// protocol.StatusInvalidModule; Msg says exactly what is wrong.
type DeployError struct {
	Status protocol.Status
	Msg    string
	Err    error // one of the sentinel errors above, or a meter error
}

func (e *DeployError) Error() string { return "vm: deploy: " + e.Msg }

// Unwrap returns the sentinel error.
func (e *DeployError) Unwrap() error { return e.Err }

func deployErr(err error, format string, args ...any) *DeployError {
	return &DeployError{Status: protocol.StatusInvalidModule, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Version is the version of the VM's execution semantics: the ABI, the
// host functions, the limits that shape results and how a Result is made.
// Every change that can make a call's Result differ for the same code,
// state and gas table is a new Version. A channel records the Version its
// members run (contract.ChannelConfig.VMVersion), and a node running
// another refuses to host the channel.
const Version uint32 = 1

// Bounds checked by Validate.
const (
	// MaxMemoryPages is the WASM 32-bit address space in 64 KiB pages.
	MaxMemoryPages = 65536
	// MaxAbortMessage is how many bytes of an abort message a Result keeps.
	MaxAbortMessage = 1024
)

// Config configures an Engine. Every node of a channel must run the same
// Config: the limits are part of the results. Zero fields stand for their
// defaults.
type Config struct {
	// MemoryLimitPages is the most linear memory a contract may have, in
	// 64 KiB pages. A module whose minimum is larger is refused at deploy;
	// memory.grow past it returns −1 to the guest. Default 256 (16 MiB).
	MemoryLimitPages uint32
	// MaxCallDepth is how deep calls may nest inside an entry function
	// before the call fails with StatusStackLimit. Default 1024, at most
	// meter.MaxCallDepthLimit. It overrides Meter.MaxCallDepth, and sets
	// the default of Meter.MaxFrameBytes (meter.MaxStackBytes /
	// MaxCallDepth): a deeper limit admits only smaller functions.
	MaxCallDepth uint32
	// CompilationCacheDir, when set, keeps compiled machine code on disk so
	// a restarted node loads a contract in milliseconds. Default "": the
	// code is cached in memory only.
	CompilationCacheDir string
	// Meter configures the gas instrumenter (cost table, frame bound, gas
	// of the start function). Default meter.DefaultConfig().
	Meter meter.Config
	// MaxInputBytes bounds a call's args. Default protocol.MaxArgsLen
	// (64 KiB).
	MaxInputBytes int
	// MaxOutputBytes bounds the output a call writes. Default 64 KiB.
	MaxOutputBytes int
	// MaxEvents bounds the events of one call. Default 256, at most
	// protocol.MaxEvents.
	MaxEvents int
	// MaxEventBytes bounds the total size (types + data) of one call's
	// events, in bytes. Default 256 KiB.
	MaxEventBytes int
	// MaxWrites bounds the distinct resources one call may put or delete.
	// Default 1024, at most protocol.MaxChanges.
	MaxWrites int
	// MaxIdleInstances is how many ready instances each module keeps for
	// reuse. More concurrent calls create more instances; the extra ones
	// are closed when they finish. Default 4.
	MaxIdleInstances int
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{
		MemoryLimitPages: 256,
		MaxCallDepth:     1024,
		Meter:            meter.DefaultConfig(),
		MaxInputBytes:    protocol.MaxArgsLen,
		MaxOutputBytes:   64 << 10,
		MaxEvents:        256,
		MaxEventBytes:    256 << 10,
		MaxWrites:        1024,
		MaxIdleInstances: 4,
	}
}

// withDefaults replaces zero fields by their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MemoryLimitPages == 0 {
		c.MemoryLimitPages = d.MemoryLimitPages
	}
	if c.MaxCallDepth == 0 {
		c.MaxCallDepth = d.MaxCallDepth
	}
	if c.Meter.Costs == nil {
		c.Meter.Costs = d.Meter.Costs
	}
	c.Meter.MaxCallDepth = c.MaxCallDepth
	if c.MaxInputBytes == 0 {
		c.MaxInputBytes = d.MaxInputBytes
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = d.MaxOutputBytes
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = d.MaxEvents
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = d.MaxEventBytes
	}
	if c.MaxWrites == 0 {
		c.MaxWrites = d.MaxWrites
	}
	if c.MaxIdleInstances == 0 {
		c.MaxIdleInstances = d.MaxIdleInstances
	}
	return c
}

// Validate checks the configuration. Zero fields stand for their defaults.
func (c Config) Validate() error {
	if c.Meter.MaxCallDepth != 0 && c.MaxCallDepth != 0 && c.Meter.MaxCallDepth != c.MaxCallDepth {
		return fmt.Errorf("vm: Meter.MaxCallDepth (%d) differs from MaxCallDepth (%d): set MaxCallDepth only",
			c.Meter.MaxCallDepth, c.MaxCallDepth)
	}
	c = c.withDefaults()
	if c.MemoryLimitPages > MaxMemoryPages {
		return fmt.Errorf("vm: MemoryLimitPages (%d) exceeds %d", c.MemoryLimitPages, MaxMemoryPages)
	}
	if c.MaxCallDepth > meter.MaxCallDepthLimit {
		return fmt.Errorf("vm: MaxCallDepth (%d) exceeds %d", c.MaxCallDepth, meter.MaxCallDepthLimit)
	}
	if err := c.Meter.Validate(); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	for _, f := range []struct {
		name   string
		v, max int
	}{
		{"MaxInputBytes", c.MaxInputBytes, protocol.MaxArgsLen},
		{"MaxOutputBytes", c.MaxOutputBytes, protocol.MaxValueLen},
		{"MaxEvents", c.MaxEvents, protocol.MaxEvents},
		{"MaxEventBytes", c.MaxEventBytes, 64 << 20},
		{"MaxWrites", c.MaxWrites, protocol.MaxChanges},
		{"MaxIdleInstances", c.MaxIdleInstances, 1 << 16},
	} {
		if f.v < 0 || f.v > f.max {
			return fmt.Errorf("vm: %s (%d) must be between 1 and %d", f.name, f.v, f.max)
		}
	}
	return nil
}
