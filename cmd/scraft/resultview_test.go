package main

import (
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// jsonKeys returns the top-level keys of a JSON object, sorted, and the
// keys of its first event.
func jsonKeys(t *testing.T, b []byte) (keys, eventKeys []string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var evs []map[string]json.RawMessage
	if err := json.Unmarshal(m["events"], &evs); err != nil {
		t.Fatalf("events: %v\n%s", err, b)
	}
	if len(evs) > 0 {
		for k := range evs[0] {
			eventKeys = append(eventKeys, k)
		}
		slices.Sort(eventKeys)
	}
	return keys, eventKeys
}

// TestResultFieldNames: scraft contract run, scraft call and scraft
// subscribe print one call's result with the same field names: the same
// chat::send, run in the sandbox and as a committed result and outcome,
// has the same keys, but for what only a committed entry has (hash,
// digest, kind) and what a subscription does not know (the function, hence
// the decoded output).
func TestResultFieldNames(t *testing.T) {
	dir := t.TempDir()
	s1, s2 := filepath.Join(dir, "s1.json"), filepath.Join(dir, "s2.json")
	alice := "0x000000000000000000000000000000aa"
	for _, args := range [][]string{
		{"--function", "init", "--write-state", s1},
		{"--function", "join", "--args", `{"nick":"alice"}`, "--sender", alice, "--state", s1, "--write-state", s2},
	} {
		if out, err := runContract(t, append([]string{"run", "--contract", "chat"}, args...)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	out, err := runContract(t, "run", "--contract", "chat", "--function", "send", "--args", `{"text":"hi"}`, "--sender", alice,
		"--state", s2, "--height", "7")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	runKeys, runEventKeys := jsonKeys(t, []byte(out))

	// The same result as scraft call and scraft subscribe print it.
	var ran struct {
		GasUsed   uint64             `json:"gas_used"`
		OutputHex string             `json:"output_hex"`
		ChangeSet protocol.ChangeSet `json:"change_set"`
		Events    []struct {
			Type    string `json:"type"`
			DataHex string `json:"data_hex"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &ran); err != nil {
		t.Fatal(err)
	}
	if len(ran.Events) == 0 || ran.OutputHex == "" {
		t.Fatalf("chat::send ran with no events or output:\n%s", out)
	}
	output, _ := hex.DecodeString(ran.OutputHex)
	var evs []protocol.Event
	for _, ev := range ran.Events {
		d, _ := hex.DecodeString(ev.DataHex)
		evs = append(evs, protocol.Event{Type: ev.Type, Data: d})
	}
	res := &client.Result{Height: 7, Status: protocol.StatusOK, GasUsed: ran.GasUsed, Output: output, ChangeSet: ran.ChangeSet, Events: evs}
	callJSON, _ := json.Marshal(resultView("chat::send", res, nil))
	callKeys, callEventKeys := jsonKeys(t, callJSON)
	o := &protocol.Outcome{Height: 7, Kind: protocol.EntryCall, Result: protocol.Result{Status: protocol.StatusOK, GasUsed: ran.GasUsed},
		Output: output, ChangeSet: ran.ChangeSet, Events: evs}
	subJSON, _ := json.Marshal(outcomeLine(o, nil))
	subKeys, subEventKeys := jsonKeys(t, subJSON)

	want := []string{"change_set", "events", "function", "gas_used", "height", "output", "output_hex", "status"}
	if !slices.Equal(runKeys, want) {
		t.Errorf("contract run keys %v, want %v", runKeys, want)
	}
	if w := append(slices.Clone(want), "digest", "hash"); !slices.Equal(callKeys, sorted(w)) {
		t.Errorf("call keys %v, want %v", callKeys, sorted(w))
	}
	if w := []string{"change_set", "digest", "events", "gas_used", "hash", "height", "kind", "output_hex", "status"}; !slices.Equal(subKeys, w) {
		t.Errorf("subscribe keys %v, want %v", subKeys, w)
	}
	for name, k := range map[string][]string{"contract run": runEventKeys, "call": callEventKeys, "subscribe": subEventKeys} {
		if !slices.Equal(k, []string{"data", "data_hex", "type"}) {
			t.Errorf("%s event keys %v", name, k)
		}
	}
	// And the same values where they overlap.
	var a, b map[string]json.RawMessage
	json.Unmarshal([]byte(out), &a)
	json.Unmarshal(callJSON, &b)
	for _, k := range want {
		var x, y any
		json.Unmarshal(a[k], &x)
		json.Unmarshal(b[k], &y)
		if xb, _ := json.Marshal(x); string(xb) != string(mustJSON(y)) {
			t.Errorf("%s: contract run %s, call %s", k, a[k], b[k])
		}
	}
}

func sorted(s []string) []string { slices.Sort(s); return s }

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
