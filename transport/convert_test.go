package transport

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/transport/raftpb"
)

// TestLogAppendedAt checks that AppendedAt survives the wire, the zero time
// included.
func TestLogAppendedAt(t *testing.T) {
	for _, at := range []time.Time{
		{},
		time.Unix(0, 0).UTC(),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2026, 11, 25, 12, 0, 0, 999999999, time.UTC),
	} {
		got := decodeLog(encodeLog(&raft.Log{AppendedAt: at}))
		require.True(t, at.Equal(got.AppendedAt), "%s became %s", at, got.AppendedAt)
		require.Equal(t, at.IsZero(), got.AppendedAt.IsZero())
	}
}

// FuzzDecodeAppendEntries feeds arbitrary bytes to the AppendEntries
// decoder: it must never panic, and what it decodes must survive another
// trip over the wire unchanged.
func FuzzDecodeAppendEntries(f *testing.F) {
	seed, _ := proto.Marshal(encodeAppendEntriesRequest("c", &raft.AppendEntriesRequest{
		RPCHeader: header("a"), Term: 3, PrevLogEntry: 1, PrevLogTerm: 1, LeaderCommitIndex: 1,
		Entries: []*raft.Log{{Index: 2, Term: 3, Data: []byte("x"), AppendedAt: time.Now()}},
	}))
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m raftpb.AppendEntriesRequest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		req := decodeAppendEntriesRequest(&m)
		again := decodeAppendEntriesRequest(roundTrip(t, encodeAppendEntriesRequest(m.GetChannel(), req)))
		require.Equal(t, req, again)
	})
}

// FuzzDecodeInstallSnapshot does the same for the InstallSnapshot request.
func FuzzDecodeInstallSnapshot(f *testing.F) {
	seed, _ := proto.Marshal(encodeInstallSnapshotRequest("c", &raft.InstallSnapshotRequest{
		RPCHeader: header("a"), SnapshotVersion: 1, Term: 3, LastLogIndex: 9, Configuration: []byte("cfg"), Size: 100,
	}))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m raftpb.InstallSnapshotRequest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		req := decodeInstallSnapshotRequest(&m)
		again := decodeInstallSnapshotRequest(roundTrip(t, encodeInstallSnapshotRequest(m.GetChannel(), req)))
		require.Equal(t, req, again)
	})
}

func roundTrip[M proto.Message](t *testing.T, m M) M {
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	out := m.ProtoReflect().New().Interface().(M)
	require.NoError(t, proto.Unmarshal(b, out))
	return out
}
