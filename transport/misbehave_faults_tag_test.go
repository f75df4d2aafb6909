//go:build scraft_misbehave

package transport

import (
	"os"
	"testing"
	"time"
)

// TestParseFaultSpec: a fault file names cuts and a delay; anything else
// is refused whole with the line that is wrong.
func TestParseFaultSpec(t *testing.T) {
	spec, err := parseFaultSpec([]byte("# partition one link\ncut 127.0.0.1:7001\n\ncut [::1]:7002 # and another\ndelay 40ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.cut) != 2 || spec.cut[0] != "127.0.0.1:7001" || spec.cut[1] != "[::1]:7002" || spec.delay != 40*time.Millisecond {
		t.Fatalf("spec %+v", spec)
	}
	if spec, err := parseFaultSpec(nil); err != nil || len(spec.cut) != 0 || spec.delay != 0 {
		t.Fatalf("empty file: %+v, %v", spec, err)
	}
	for _, bad := range []string{
		"cut", "cut 127.0.0.1", "cut a b", "delay", "delay soon", "delay -1s", "delay 1h",
		"drop 0.5", "isolate 127.0.0.1:1", "cut 127.0.0.1:1\nbogus", "\x00\x01 \x02",
	} {
		if spec, err := parseFaultSpec([]byte(bad)); err == nil {
			t.Errorf("%q accepted: %+v", bad, spec)
		}
	}
}

// TestApplyFaultFile: the file cuts one link and delays what is sent; a
// file that does not parse changes nothing; an empty one heals.
func TestApplyFaultFile(t *testing.T) {
	s := &Server{addr: "127.0.0.1:7000", logger: testLogger(t)}
	f := NewFaults(0)
	path := t.TempDir() + "/faults"
	write := func(b string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cut 127.0.0.1:7001\ndelay 25ms\n")
	applyFaultFile(s, f, path)
	if !f.Cut(s.addr, "127.0.0.1:7001") || f.Cut(s.addr, "127.0.0.1:7002") || f.Cut(s.addr, s.addr) {
		t.Fatal("cuts other than the one link named")
	}
	if d, err := f.check(s.addr, "127.0.0.1:7002"); err != nil || d != 25*time.Millisecond {
		t.Fatalf("delay %s, %v", d, err)
	}
	write("cut nowhere\n")
	applyFaultFile(s, f, path)
	if !f.Cut(s.addr, "127.0.0.1:7001") {
		t.Fatal("a refused file changed the faults")
	}
	write("")
	applyFaultFile(s, f, path)
	if d, err := f.check(s.addr, "127.0.0.1:7001"); err != nil || d != 0 {
		t.Fatalf("after an empty file: delay %s, %v", d, err)
	}
}
