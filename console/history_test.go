package console

import (
	"fmt"
	"testing"
)

// TestHistoryResume: a reader after an id gets every later message in
// order while nothing above its id was evicted, and is told when
// something was, so that it starts over instead of missing it.
func TestHistoryResume(t *testing.T) {
	h := newHistory(3)
	for _, id := range []uint64{10, 12, 15, 20} { // 10 is evicted
		h.append(id, "update", []byte(fmt.Sprint(id)))
	}
	for _, tc := range []struct {
		after   uint64
		ids     []uint64
		covered bool
	}{
		{after: 9, covered: false},
		{after: 10, ids: []uint64{12, 15, 20}, covered: true},
		{after: 11, ids: []uint64{12, 15, 20}, covered: true},
		{after: 15, ids: []uint64{20}, covered: true},
		{after: 20, covered: true},
		{after: 99, covered: true},
	} {
		msgs, covered, _, _ := h.after(tc.after)
		var ids []uint64
		for _, m := range msgs {
			ids = append(ids, m.id)
		}
		if covered != tc.covered || fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("after(%d) = %v, covered %v; want %v, %v", tc.after, ids, covered, tc.ids, tc.covered)
		}
	}
	if h.last() != 20 {
		t.Fatalf("last %d", h.last())
	}
	// An append wakes a waiting reader; close wakes it for good.
	_, _, wake, _ := h.after(20)
	h.append(21, "update", nil)
	select {
	case <-wake:
	default:
		t.Fatal("append did not wake the reader")
	}
	_, _, wake, _ = h.after(21)
	h.close()
	h.close()
	if _, _, _, closed := h.after(21); !closed {
		t.Fatal("not closed")
	}
	<-wake
}

// TestClusterDiff: the events between two readings of a channel, in
// their fixed order.
func TestClusterDiff(t *testing.T) {
	var a, b ChannelState
	a.Leader[0], b.Leader[0] = 1, 2
	p := ChannelState{Leader: a.Leader, Epoch: 1, RaftState: "Leader", SettledHeight: 5}
	c := ChannelState{Leader: b.Leader, Epoch: 2, RaftState: "Follower", SettledHeight: 9, Evidence: 1, Holding: true}
	var kinds []string
	for _, e := range diff(p, true, c, 0) {
		kinds = append(kinds, e.Kind)
	}
	want := []string{EventLeader, EventRaft, EventSettled, EventEvidence, EventHolding}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if e := diff(p, true, c, 0)[0]; e.Previous == nil || *e.Previous != a.Leader || e.Leader != b.Leader {
		t.Fatalf("leader event %+v", e)
	}
	if len(diff(c, true, c, 0)) != 0 {
		t.Fatal("events between equal readings")
	}
}
