package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ABI describes a contract's entry functions, resources and events with
// typed fields, so that JSON arguments can be encoded to the canonical codec
// and stored values decoded back to JSON. It is loaded from the contract's
// abi.json.
//
// Types are written as: u8 u16 u32 u64 i32 i64 bool string bytes address,
// vec<T>, option<T>, or the name of a struct defined in Structs. In JSON,
// bytes are hex strings ("0x" prefix optional on input), addresses are "0x"
// + 32 hex digits, options are null or the value, u64 and i64 are numbers
// (decimal strings are accepted on input too).
type ABI struct {
	// Name is the contract's name, the prefix of its functions
	// ("chat::send").
	Name string `json:"name"`
	// Structs are the named record types, fields encoded in order.
	Structs []Struct `json:"structs"`
	// Functions are the entry functions.
	Functions []Function `json:"functions"`
	// Resources are the resource types the contract stores.
	Resources []Resource `json:"resources"`
	// Events are the event types the contract emits.
	Events []Event `json:"events"`

	structs   map[string]*Struct
	functions map[string]*Function
	resources map[string]*Resource
	events    map[string]*Event
	types     map[string]*typeNode
	sealed    bool // types is read-only: an ABI is safe for concurrent use
}

// Struct is a named record: its fields are encoded one after another.
type Struct struct {
	Name   string  `json:"name"`
	Fields []Field `json:"fields"`
}

// Field is a named, typed value.
type Field struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Function is an entry function: its args are encoded in order as the
// call's input; Output is the type of what it writes with output_write, or
// empty if it writes nothing.
type Function struct {
	Name   string  `json:"name"`
	Doc    string  `json:"doc,omitempty"`
	Args   []Field `json:"args"`
	Output string  `json:"output,omitempty"`
}

// Resource is a stored resource type ("chat::ChatGroup") and the type of
// its value. Account says where instances live.
type Resource struct {
	Type    string `json:"type"`
	Value   string `json:"value"`
	Account string `json:"account,omitempty"`
	Doc     string `json:"doc,omitempty"`
}

// Event is an emitted event type and the type of its data.
type Event struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Doc   string `json:"doc,omitempty"`
}

type kind int

const (
	kU8 kind = iota
	kU16
	kU32
	kU64
	kI32
	kI64
	kBool
	kString
	kBytes
	kAddress
	kVec
	kOption
	kStruct
)

var primitives = map[string]kind{
	"u8": kU8, "u16": kU16, "u32": kU32, "u64": kU64, "i32": kI32, "i64": kI64,
	"bool": kBool, "string": kString, "bytes": kBytes, "address": kAddress,
}

// typeNode is a parsed type expression.
type typeNode struct {
	name string // as written, canonical spacing
	kind kind
	elem *typeNode // vec, option
	st   *Struct   // struct
}

// ParseABI parses and checks an ABI: unique names, every type resolvable,
// no struct containing itself.
func ParseABI(b []byte) (*ABI, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a ABI
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadABI, err)
	}
	if err := a.index(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadABI, a.Name, err)
	}
	return &a, nil
}

func (a *ABI) index() error {
	if !isIdent(a.Name) {
		return fmt.Errorf("bad contract name %q", a.Name)
	}
	a.structs = make(map[string]*Struct)
	a.functions = make(map[string]*Function)
	a.resources = make(map[string]*Resource)
	a.events = make(map[string]*Event)
	a.types = make(map[string]*typeNode)
	for i := range a.Structs {
		s := &a.Structs[i]
		if _, prim := primitives[s.Name]; prim || !isIdent(s.Name) || s.Name == "vec" || s.Name == "option" {
			return fmt.Errorf("bad struct name %q", s.Name)
		}
		if a.structs[s.Name] != nil {
			return fmt.Errorf("duplicate struct %q", s.Name)
		}
		a.structs[s.Name] = s
	}
	for i := range a.Structs {
		s := &a.Structs[i]
		if err := a.checkFields(s.Fields); err != nil {
			return fmt.Errorf("struct %s: %w", s.Name, err)
		}
	}
	if err := a.checkCycles(); err != nil {
		return err
	}
	for i := range a.Functions {
		f := &a.Functions[i]
		if !isIdent(f.Name) {
			return fmt.Errorf("bad function name %q", f.Name)
		}
		if a.functions[f.Name] != nil {
			return fmt.Errorf("duplicate function %q", f.Name)
		}
		a.functions[f.Name] = f
		if err := a.checkFields(f.Args); err != nil {
			return fmt.Errorf("function %s: %w", f.Name, err)
		}
		if f.Output != "" {
			if _, err := a.typeOf(f.Output); err != nil {
				return fmt.Errorf("function %s output: %w", f.Name, err)
			}
		}
	}
	for i := range a.Resources {
		r := &a.Resources[i]
		if r.Type == "" || a.resources[r.Type] != nil {
			return fmt.Errorf("missing or duplicate resource type %q", r.Type)
		}
		a.resources[r.Type] = r
		if _, err := a.typeOf(r.Value); err != nil {
			return fmt.Errorf("resource %s: %w", r.Type, err)
		}
	}
	for i := range a.Events {
		e := &a.Events[i]
		if e.Type == "" || a.events[e.Type] != nil {
			return fmt.Errorf("missing or duplicate event type %q", e.Type)
		}
		a.events[e.Type] = e
		if _, err := a.typeOf(e.Value); err != nil {
			return fmt.Errorf("event %s: %w", e.Type, err)
		}
	}
	a.sealed = true
	return nil
}

func (a *ABI) checkFields(fs []Field) error {
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		if !isIdent(f.Name) || seen[f.Name] {
			return fmt.Errorf("missing, bad or duplicate field name %q", f.Name)
		}
		seen[f.Name] = true
		if _, err := a.typeOf(f.Type); err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
	}
	return nil
}

// checkCycles refuses structs that contain themselves, directly or through
// other types: their values would have no finite encoding to start from.
func (a *ABI) checkCycles() error {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make(map[string]int, len(a.Structs))
	var visit func(s *Struct) error
	var walk func(t *typeNode) error
	walk = func(t *typeNode) error {
		switch t.kind {
		case kVec, kOption:
			return walk(t.elem)
		case kStruct:
			return visit(t.st)
		}
		return nil
	}
	visit = func(s *Struct) error {
		switch state[s.Name] {
		case visiting:
			return fmt.Errorf("struct %s contains itself", s.Name)
		case done:
			return nil
		}
		state[s.Name] = visiting
		for _, f := range s.Fields {
			t, _ := a.typeOf(f.Type) // checked before
			if err := walk(t); err != nil {
				return err
			}
		}
		state[s.Name] = done
		return nil
	}
	for i := range a.Structs {
		if err := visit(&a.Structs[i]); err != nil {
			return err
		}
	}
	return nil
}

// typeOf parses a type expression. While the ABI is being indexed results
// are memoised; afterwards the memo is only read, so every type named in
// the ABI costs a map lookup and others are parsed each time.
func (a *ABI) typeOf(expr string) (*typeNode, error) {
	key := strings.ReplaceAll(expr, " ", "")
	if t := a.types[key]; t != nil {
		return t, nil
	}
	t, err := a.parseType(key)
	if err != nil {
		return nil, err
	}
	if !a.sealed {
		a.types[key] = t
	}
	return t, nil
}

func (a *ABI) parseType(s string) (*typeNode, error) {
	if k, ok := primitives[s]; ok {
		return &typeNode{name: s, kind: k}, nil
	}
	for _, w := range []struct {
		prefix string
		kind   kind
	}{{"vec<", kVec}, {"option<", kOption}} {
		if strings.HasPrefix(s, w.prefix) && strings.HasSuffix(s, ">") {
			elem, err := a.typeOf(s[len(w.prefix) : len(s)-1])
			if err != nil {
				return nil, err
			}
			return &typeNode{name: s, kind: w.kind, elem: elem}, nil
		}
	}
	if st := a.structs[s]; st != nil {
		return &typeNode{name: s, kind: kStruct, st: st}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownType, s)
}

func isIdent(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Function returns the entry function called name.
func (a *ABI) Function(name string) (*Function, bool) {
	f, ok := a.functions[name]
	return f, ok
}

// Resource returns the resource of the given type ("chat::ChatGroup").
func (a *ABI) Resource(typ string) (*Resource, bool) {
	r, ok := a.resources[typ]
	return r, ok
}

// Event returns the event of the given type ("chat::Message").
func (a *ABI) Event(typ string) (*Event, bool) {
	e, ok := a.events[typ]
	return e, ok
}

// EntryNames returns the function names in ABI order.
func (a *ABI) EntryNames() []string {
	out := make([]string, len(a.Functions))
	for i, f := range a.Functions {
		out[i] = f.Name
	}
	return out
}

// EncodeArgs turns a JSON object of named arguments into the function's
// canonical input. Every argument is required and unknown names are
// refused; an empty input or null stands for {}.
func (a *ABI) EncodeArgs(function string, jsonArgs []byte) ([]byte, error) {
	f, ok := a.functions[function]
	if !ok {
		return nil, fmt.Errorf("%w: %s::%s (have %s)", ErrUnknownFunction, a.Name, function, strings.Join(a.EntryNames(), ", "))
	}
	if t := bytes.TrimSpace(jsonArgs); len(t) == 0 || string(t) == "null" {
		jsonArgs = []byte("{}")
	}
	enc := encoder{abi: a}
	if err := enc.object(f.Args, jsonArgs, a.Name+"::"+f.Name); err != nil {
		return nil, err
	}
	return enc.e.Out(), nil
}

// EncodeValue turns a JSON value into the canonical encoding of typ.
func (a *ABI) EncodeValue(typ string, jsonValue []byte) ([]byte, error) {
	t, err := a.typeOf(typ)
	if err != nil {
		return nil, err
	}
	enc := encoder{abi: a}
	if err := enc.value(t, jsonValue, typ); err != nil {
		return nil, err
	}
	return enc.e.Out(), nil
}

// DecodeValue turns the canonical encoding of typ into indented-free JSON,
// fields in declaration order. Every byte must be consumed.
func (a *ABI) DecodeValue(typ string, b []byte) (json.RawMessage, error) {
	t, err := a.typeOf(typ)
	if err != nil {
		return nil, err
	}
	return a.decodeAll(b, typ, func(d *decoder) { d.value(t, typ) })
}

// DecodeArgs turns a function's canonical input back into a JSON object.
func (a *ABI) DecodeArgs(function string, b []byte) (json.RawMessage, error) {
	f, ok := a.functions[function]
	if !ok {
		return nil, fmt.Errorf("%w: %s::%s", ErrUnknownFunction, a.Name, function)
	}
	where := a.Name + "::" + f.Name
	return a.decodeAll(b, where, func(d *decoder) { d.object(f.Args, where) })
}

// DecodeOutput turns what function wrote with output_write into JSON; a
// function without an output type must have written nothing (null).
func (a *ABI) DecodeOutput(function string, out []byte) (json.RawMessage, error) {
	f, ok := a.functions[function]
	if !ok {
		return nil, fmt.Errorf("%w: %s::%s", ErrUnknownFunction, a.Name, function)
	}
	if f.Output == "" {
		if len(out) != 0 {
			return nil, fmt.Errorf("%w: %s::%s declares no output but wrote %d bytes", ErrBadValue, a.Name, f.Name, len(out))
		}
		return json.RawMessage("null"), nil
	}
	return a.DecodeValue(f.Output, out)
}

// DecodeResource turns a stored value of resource type typ into JSON.
func (a *ABI) DecodeResource(typ string, val []byte) (json.RawMessage, error) {
	r, ok := a.resources[typ]
	if !ok {
		return nil, fmt.Errorf("%w: resource %s", ErrUnknownType, typ)
	}
	return a.DecodeValue(r.Value, val)
}

// DecodeEvent turns an event's data into JSON.
func (a *ABI) DecodeEvent(typ string, data []byte) (json.RawMessage, error) {
	e, ok := a.events[typ]
	if !ok {
		return nil, fmt.Errorf("%w: event %s", ErrUnknownType, typ)
	}
	return a.DecodeValue(e.Value, data)
}
