//go:build linux

package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPrefix starts the name of every network namespace a netLab makes:
// scnet-PID-RAND-ROLE, PID the test process's, so that a run killed
// before its cleanup leaves names the next run can tell are stale.
const netnsPrefix = "scnet-"

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/var/run/netns"

// netLab is a small network of namespaces that one test makes and tears
// down: a hub namespace that routes between one namespace per region,
// each joined to the hub by a veth pair, with a delay per pair of regions
// (the settlement chain runs in the hub). Nothing touches the test's own
// (root) namespace: the test reaches the processes inside through
// forwarders it listens for on loopback (forward), whose upstream
// connections it opens from inside the target namespace.
//
// The delays: the kernels here have no sch_netem (tc qdisc ... netem
// answers "Specified qdisc kind is unknown"), so the hub routes every
// packet from one region to another through a TUN device the test holds
// open, and the test writes each packet back into the hub after half the
// pair's round trip (linkDelayer): netem's job, done in this process, on
// the real packets of the real TCP connections between the processes.
type netLab struct {
	t       testing.TB
	hub     string // the hub namespace's name
	hubIP   string // the hub's own address (on its loopback), reached from every region without delay
	regions []*netRegion
	made    []string // namespaces made, torn down in reverse
	delayer *linkDelayer

	mu     sync.Mutex
	closed bool
	lns    []net.Listener
	conns  []net.Conn
	wg     sync.WaitGroup
}

// netRegion is one region's namespace.
type netRegion struct {
	name string // "a", "b", ...
	ns   string
	ip   string // its address: labSubnet + (index+1) + ".2"
}

// regionLink is the round trip between two regions.
type regionLink struct {
	a, b string
	rtt  time.Duration
}

// labSubnet is the netLab's address block, inside its own namespaces
// only: the hub is 10.88.0.1, region i's link is 10.88.(i+1).0/24, the
// hub's end .1 and the region's .2.
const labSubnet = "10.88."

// newNetLab makes the hub and one namespace per region, routed through
// the hub with the round trips of links between regions (half on each
// crossing, per pair, so the matrix is exact rather than a sum of
// per-region delays). Within a region, and between a region and the hub,
// there is no added delay. It skips the test when the machine cannot:
// not root, no ip command, no network namespaces or TUN device. Everything
// it makes is removed in t.Cleanup, after the processes the test starts
// later (t's cleanups run last in, first out), also when the test fails
// midway.
func newNetLab(t testing.TB, regions []string, links []regionLink) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("no ip command (iproute2): %v", err)
	}
	if len(regions) > 200 {
		t.Fatalf("%d regions: at most 200", len(regions))
	}
	sweepStaleNetns(t)
	var rnd [3]byte
	rand.Read(rnd[:])
	base := fmt.Sprintf("%s%d-%s-", netnsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	lab := &netLab{t: t, hub: base + "hub", hubIP: labSubnet + "0.1"}
	t.Cleanup(lab.teardown)
	if out, err := exec.Command("ip", "netns", "add", lab.hub).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace: %v: %s", err, out)
	}
	lab.made = append(lab.made, lab.hub)
	lab.ip(lab.hub, "link", "set", "lo", "up")
	lab.ip(lab.hub, "addr", "add", lab.hubIP+"/32", "dev", "lo")
	tun, err := openTUN(lab.hub, "tun0")
	if err != nil {
		t.Skipf("cannot open a TUN device in a network namespace: %v", err)
	}
	lab.ip(lab.hub, "link", "set", "tun0", "up")
	// Whatever comes in from a region and is not for the hub itself
	// (the local table is looked up first) goes to the TUN device; what
	// the delayer writes back comes in on tun0 and takes the main table
	// to its region's link.
	lab.ip(lab.hub, "route", "add", "default", "dev", "tun0", "table", "100")
	for i, name := range regions {
		sub := fmt.Sprintf("%s%d.", labSubnet, i+1)
		r := &netRegion{name: name, ns: base + name, ip: sub + "2"}
		lab.mustRun("ip", "netns", "add", r.ns)
		lab.made = append(lab.made, r.ns)
		lab.regions = append(lab.regions, r)
		hv := "hv" + strconv.Itoa(i)
		// The pair is made in the hub with its other end put straight
		// into the region: no interface passes through the root
		// namespace.
		lab.ip(lab.hub, "link", "add", hv, "type", "veth", "peer", "name", "eth0", "netns", r.ns)
		lab.ip(lab.hub, "addr", "add", sub+"1/24", "dev", hv)
		lab.ip(lab.hub, "link", "set", hv, "up")
		lab.ip(lab.hub, "rule", "add", "iif", hv, "lookup", "100", "pref", "100")
		lab.ip(r.ns, "link", "set", "lo", "up")
		lab.ip(r.ns, "addr", "add", r.ip+"/24", "dev", "eth0")
		lab.ip(r.ns, "link", "set", "eth0", "up")
		lab.ip(r.ns, "route", "add", "default", "via", sub+"1")
	}
	// The hub forwards, and takes back from tun0 packets whose source
	// routes through another interface.
	for _, kv := range [][2]string{
		{"ipv4/ip_forward", "1"},
		{"ipv4/conf/all/rp_filter", "0"},
		{"ipv4/conf/default/rp_filter", "0"},
		{"ipv4/conf/tun0/rp_filter", "0"},
	} {
		if err := sysctlIn(lab.hub, kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	oneWay := make([][]time.Duration, len(regions))
	for i := range regions {
		oneWay[i] = make([]time.Duration, len(regions))
		for j := range regions {
			oneWay[i][j] = linkRTT(links, regions[i], regions[j]) / 2
		}
	}
	lab.delayer = startLinkDelayer(tun, oneWay)
	return lab
}

// openTUN creates the TUN device name in namespace ns and returns it,
// held open by this process (the device goes with the last close).
func openTUN(ns, name string) (*os.File, error) {
	var fd int
	var terr error
	if err := inNetns(ns, func() {
		if fd, terr = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); terr != nil {
			return
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			terr = err
			return
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			terr = fmt.Errorf("TUNSETIFF: %w", err)
		}
	}); err != nil {
		return nil, err
	}
	if terr != nil {
		return nil, terr
	}
	// Non-blocking, so that reads wait in the runtime's poller and a
	// Close ends them.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// sysctlIn sets net/KEY to value in namespace ns (/proc/sys/net is the
// opening thread's namespace's).
func sysctlIn(ns, key, value string) error {
	var werr error
	if err := inNetns(ns, func() { werr = os.WriteFile("/proc/sys/net/"+key, []byte(value), 0o644) }); err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("sysctl net/%s in %s: %w", key, ns, werr)
	}
	return nil
}

// linkDelayer holds each packet routed between two regions for the
// pair's one-way delay, then hands it back to the hub's routing. Packets
// of one pair keep their order (one queue per pair, one delay each); a
// queue that is full (linkQueueLimit packets in flight) drops, as a
// netem queue past its limit does.
type linkDelayer struct {
	tun    *os.File
	oneWay [][]time.Duration // [from region][to region]
	queues [][]chan delayedPacket
	stop   chan struct{}
	wg     sync.WaitGroup
	// passed and dropped count packets: delayed and written back, and
	// dropped on a full queue.
	passed, dropped atomic.Int64
}

type delayedPacket struct {
	due time.Time
	b   []byte
}

// linkQueueLimit is the most packets in flight on one pair of regions.
const linkQueueLimit = 1 << 16

func startLinkDelayer(tun *os.File, oneWay [][]time.Duration) *linkDelayer {
	d := &linkDelayer{tun: tun, oneWay: oneWay, stop: make(chan struct{})}
	d.queues = make([][]chan delayedPacket, len(oneWay))
	for i := range oneWay {
		d.queues[i] = make([]chan delayedPacket, len(oneWay))
		for j := range oneWay {
			q := make(chan delayedPacket, linkQueueLimit)
			d.queues[i][j] = q
			d.wg.Add(1)
			go d.drain(q)
		}
	}
	d.wg.Add(1)
	go d.read()
	return d
}

// regionOfIP returns the region index of an IPv4 address of the lab
// (10.88.(i+1).x), or -1.
func (d *linkDelayer) regionOfIP(ip []byte) int {
	if ip[0] != 10 || ip[1] != 88 || ip[2] == 0 || int(ip[2]) > len(d.oneWay) {
		return -1
	}
	return int(ip[2]) - 1
}

func (d *linkDelayer) read() {
	defer d.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		n, err := d.tun.Read(buf)
		if err != nil {
			return // closed at teardown
		}
		if n < 20 || buf[0]>>4 != 4 {
			continue // not IPv4: the lab routes nothing else
		}
		from, to := d.regionOfIP(buf[12:16]), d.regionOfIP(buf[16:20])
		if from < 0 || to < 0 {
			continue // nothing of the lab's: a lost packet, as on a router without the route
		}
		p := delayedPacket{due: time.Now().Add(d.oneWay[from][to]), b: append([]byte(nil), buf[:n]...)}
		select {
		case d.queues[from][to] <- p:
		default:
			d.dropped.Add(1)
		}
	}
}

// drain writes q's packets back to the TUN device when each is due.
func (d *linkDelayer) drain(q chan delayedPacket) {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var p delayedPacket
		select {
		case p = <-q:
		case <-d.stop:
			return
		}
		if wait := time.Until(p.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.stop:
				return
			}
		}
		if _, err := d.tun.Write(p.b); err == nil {
			d.passed.Add(1)
		}
	}
}

// close stops the delayer and closes its device.
func (d *linkDelayer) close() {
	close(d.stop)
	d.tun.Close()
	d.wg.Wait()
}

// linkRTT is the round trip links give between regions a and b (0 when
// they name none).
func linkRTT(links []regionLink, a, b string) time.Duration {
	for _, l := range links {
		if (l.a == a && l.b == b) || (l.a == b && l.b == a) {
			return l.rtt
		}
	}
	return 0
}

func (lab *netLab) region(name string) *netRegion {
	for _, r := range lab.regions {
		if r.name == name {
			return r
		}
	}
	lab.t.Fatalf("no region %q", name)
	return nil
}

func (lab *netLab) ip(ns string, args ...string) {
	lab.mustRun("ip", append([]string{"-n", ns}, args...)...)
}

func (lab *netLab) mustRun(name string, args ...string) {
	lab.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		lab.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// teardown closes the forwarders and the delayer, kills whatever still runs in the
// namespaces (the test's processes are killed by their own cleanups
// before this one) and removes the namespaces, which takes their
// interfaces with them.
func (lab *netLab) teardown() {
	lab.mu.Lock()
	lab.closed = true
	for _, l := range lab.lns {
		l.Close()
	}
	for _, c := range lab.conns {
		c.Close()
	}
	lab.mu.Unlock()
	lab.wg.Wait()
	if lab.delayer != nil {
		lab.delayer.close()
		lab.t.Logf("link delayer: %d packets delayed, %d dropped on a full queue", lab.delayer.passed.Load(), lab.delayer.dropped.Load())
	}
	for _, ns := range slices.Backward(lab.made) {
		if err := removeNetns(ns); err != nil {
			lab.t.Errorf("remove network namespace %s: %v", ns, err)
		}
	}
}

// removeNetns kills the processes left in ns and deletes it.
func removeNetns(ns string) error {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			// Never this process: a thread of it may have visited ns.
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// sweepStaleNetns removes the namespaces of runs whose test process is
// gone (killed before its cleanup ran). A namespace of a run still alive,
// this one's or a concurrent one's, is left alone.
func sweepStaleNetns(t testing.TB) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil || pid == os.Getpid() {
			continue // alive (or ESRCH only when gone)
		}
		if err := removeNetns(e.Name()); err != nil {
			t.Logf("stale network namespace %s: %v", e.Name(), err)
		} else {
			t.Logf("removed stale network namespace %s (process %d is gone)", e.Name(), pid)
		}
	}
}

// inNetns runs fn on an OS thread moved into namespace ns: sockets fn
// opens belong to ns and keep working from any goroutine. The thread goes
// back to its own namespace before the Go scheduler may use it again; if
// it cannot, the goroutine ends locked to it and the runtime retires it.
func inNetns(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer own.Close()
		f, err := os.Open(netnsDir + "/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

// dialIn opens a TCP connection to addr from inside namespace ns.
func dialIn(ns, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := inNetns(ns, func() { c, derr = net.DialTimeout("tcp", addr, timeout) }); err != nil {
		return nil, err
	}
	return c, derr
}

// dialContext dials addr, an address in the lab, from inside the
// namespace that holds it: a client of a node in a region sits in that
// region. Given to gRPC (grpc.WithContextDialer), it lets the test's
// clients call the nodes at the addresses they advertise.
func (lab *netLab) dialContext(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ns := ""
	if host == lab.hubIP {
		ns = lab.hub
	}
	for _, r := range lab.regions {
		if host == r.ip {
			ns = r.ns
		}
	}
	if ns == "" {
		return nil, fmt.Errorf("%s is not an address of the lab", addr)
	}
	var c net.Conn
	var derr error
	if err := inNetns(ns, func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, "tcp", addr)
	}); err != nil {
		return nil, err
	}
	if derr == nil && !lab.track(c) {
		return nil, fmt.Errorf("dial %s: the lab is torn down", addr)
	}
	return c, derr
}

// listenIn listens on addr inside namespace ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var l net.Listener
	var lerr error
	if err := inNetns(ns, func() { l, lerr = net.Listen("tcp", addr) }); err != nil {
		return nil, err
	}
	return l, lerr
}

// forward listens on loopback in the test's namespace and relays each
// connection to addr as dialled from inside ns: what the test uses to
// reach a process's port there (a client there, next to the process).
// It returns the loopback address.
func (lab *netLab) forward(ns, addr string) string {
	lab.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		lab.t.Fatal(err)
	}
	lab.mu.Lock()
	lab.lns = append(lab.lns, l)
	lab.mu.Unlock()
	lab.wg.Add(1)
	go func() {
		defer lab.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := dialIn(ns, addr, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			if !lab.track(c, up) {
				return
			}
			lab.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer lab.wg.Done()
				io.Copy(dst, src)
				// Half-close would keep a dead peer's side open; a
				// relay whose one way ended is over.
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return l.Addr().String()
}

// track records conns to close at teardown; false (and closed) after it.
func (lab *netLab) track(conns ...net.Conn) bool {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if lab.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	lab.conns = append(lab.conns, conns...)
	return true
}

// measureRTTs times TCP connects (one round trip: SYN, SYN-ACK) between
// every pair of regions, the best of five, and fails the test when one
// is below the round trip links set: the check that the delays are
// real. It returns the matrix as text.
func (lab *netLab) measureRTTs(links []regionLink) string {
	lab.t.Helper()
	var sb strings.Builder
	for _, to := range lab.regions {
		l, err := listenIn(to.ns, to.ip+":0")
		if err != nil {
			lab.t.Fatalf("listen in %s: %v", to.ns, err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for _, from := range lab.regions {
			if from == to {
				continue
			}
			best := time.Duration(-1)
			for range 5 {
				start := time.Now()
				c, err := dialIn(from.ns, l.Addr().String(), 5*time.Second)
				d := time.Since(start)
				if err != nil {
					l.Close()
					lab.t.Fatalf("dial %s from %s: %v", to.name, from.name, err)
				}
				c.Close()
				if best < 0 || d < best {
					best = d
				}
			}
			want := linkRTT(links, from.name, to.name)
			fmt.Fprintf(&sb, "%s→%s %.1f ms (set %s); ", from.name, to.name, float64(best.Microseconds())/1000, want)
			if best < want*9/10 {
				lab.t.Errorf("round trip %s→%s measured %s, below the %s set: the delays are not in place", from.name, to.name, best, want)
			}
		}
		l.Close()
	}
	return strings.TrimSuffix(sb.String(), "; ")
}
