//go:build scraft_misbehave

package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// maxFaultDelay bounds a delay a fault file asks for: longer would only
// stall a node, which SIGSTOP does better.
const maxFaultDelay = 10 * time.Second

// faultSpec is what a fault file asks for: links to cut and a delay on
// every message the node sends.
type faultSpec struct {
	cut   []string
	delay time.Duration
}

// parseFaultSpec reads a fault file (isolate:PATH): one directive a line,
// blank lines and lines from # on ignored:
//
//	cut HOST:PORT     cut the link to that peer (both ways when the peer's
//	                  file cuts this node too: each side cuts what it sends)
//	delay DURATION    delay every message this node sends to a peer
//
// An empty file heals. Anything else is refused whole, so a typo never
// leaves a node half faulty.
func parseFaultSpec(b []byte) (*faultSpec, error) {
	spec := &faultSpec{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: %q: want cut HOST:PORT or delay DURATION", n, line)
		}
		switch fields[0] {
		case "cut":
			if _, _, err := net.SplitHostPort(fields[1]); err != nil {
				return nil, fmt.Errorf("line %d: cut %q: %v", n, fields[1], err)
			}
			spec.cut = append(spec.cut, fields[1])
		case "delay":
			d, err := time.ParseDuration(fields[1])
			if err != nil || d < 0 || d > maxFaultDelay {
				return nil, fmt.Errorf("line %d: delay %q: want a duration from 0 to %s", n, fields[1], maxFaultDelay)
			}
			spec.delay = d
		default:
			return nil, fmt.Errorf("line %d: unknown directive %q (cut, delay)", n, fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return spec, nil
}

// applyFaultFile reads path and puts s's Faults in the state it asks for,
// from a healed one (an isolation by SIGUSR1 ends too). A file that does
// not parse changes nothing.
func applyFaultFile(s *Server, f *Faults, path string) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		s.logger.Error("misbehaving: cannot read the fault file", "path", path, "error", err)
		return
	}
	spec, err := parseFaultSpec(b)
	if err != nil {
		s.logger.Error("misbehaving: fault file refused, faults unchanged", "path", path, "error", err)
		return
	}
	f.Heal()
	for _, peer := range spec.cut {
		f.Disconnect(s.addr, peer)
	}
	f.SetDelay(spec.delay)
	s.logger.Warn("misbehaving: faults set", "addr", s.addr, "cut", spec.cut, "delay", spec.delay)
}
