package transport

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/transport/raftpb"
)

// Conversions between raft's command structs and their protobuf messages.
// Every field is carried; a request decoded on the far side equals the one
// raft built, except that empty byte slices arrive as nil and AppendedAt
// arrives in UTC.

func encodeHeader(h raft.RPCHeader) *raftpb.RPCHeader {
	return &raftpb.RPCHeader{ProtocolVersion: int64(h.ProtocolVersion), Id: h.ID, Addr: h.Addr}
}

func decodeHeader(h *raftpb.RPCHeader) raft.RPCHeader {
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersion(h.GetProtocolVersion()),
		ID:              h.GetId(),
		Addr:            h.GetAddr(),
	}
}

func encodeLog(l *raft.Log) *raftpb.Log {
	out := &raftpb.Log{
		Index:      l.Index,
		Term:       l.Term,
		Type:       uint32(l.Type),
		Data:       l.Data,
		Extensions: l.Extensions,
	}
	if !l.AppendedAt.IsZero() {
		out.AppendedAtSeconds = l.AppendedAt.Unix() + zeroTimeUnix
		out.AppendedAtNanos = int32(l.AppendedAt.Nanosecond())
	}
	return out
}

// zeroTimeUnix is minus the Unix time of Go's zero time (0001-01-01 UTC):
// the wire counts seconds from there so that the zero time is all zeros.
const zeroTimeUnix = 62135596800

func decodeLog(l *raftpb.Log) *raft.Log {
	out := &raft.Log{
		Index:      l.GetIndex(),
		Term:       l.GetTerm(),
		Type:       raft.LogType(l.GetType()),
		Data:       l.GetData(),
		Extensions: l.GetExtensions(),
	}
	if sec, nsec := l.GetAppendedAtSeconds(), l.GetAppendedAtNanos(); sec != 0 || nsec != 0 {
		out.AppendedAt = time.Unix(sec-zeroTimeUnix, int64(nsec)).UTC()
	}
	return out
}

func encodeAppendEntriesRequest(channel string, r *raft.AppendEntriesRequest) *raftpb.AppendEntriesRequest {
	out := &raftpb.AppendEntriesRequest{
		Channel:           channel,
		Header:            encodeHeader(r.RPCHeader),
		Term:              r.Term,
		Leader:            r.Leader,
		PrevLogEntry:      r.PrevLogEntry,
		PrevLogTerm:       r.PrevLogTerm,
		LeaderCommitIndex: r.LeaderCommitIndex,
	}
	if len(r.Entries) > 0 {
		out.Entries = make([]*raftpb.Log, len(r.Entries))
		for i, l := range r.Entries {
			out.Entries[i] = encodeLog(l)
		}
	}
	return out
}

func decodeAppendEntriesRequest(r *raftpb.AppendEntriesRequest) *raft.AppendEntriesRequest {
	out := &raft.AppendEntriesRequest{
		RPCHeader:         decodeHeader(r.GetHeader()),
		Term:              r.GetTerm(),
		Leader:            r.GetLeader(),
		PrevLogEntry:      r.GetPrevLogEntry(),
		PrevLogTerm:       r.GetPrevLogTerm(),
		LeaderCommitIndex: r.GetLeaderCommitIndex(),
	}
	if n := len(r.GetEntries()); n > 0 {
		out.Entries = make([]*raft.Log, n)
		for i, l := range r.GetEntries() {
			out.Entries[i] = decodeLog(l)
		}
	}
	return out
}

func encodeAppendEntriesResponse(r *raft.AppendEntriesResponse) *raftpb.AppendEntriesResponse {
	return &raftpb.AppendEntriesResponse{
		Header:         encodeHeader(r.RPCHeader),
		Term:           r.Term,
		LastLog:        r.LastLog,
		Success:        r.Success,
		NoRetryBackoff: r.NoRetryBackoff,
	}
}

func decodeAppendEntriesResponse(r *raftpb.AppendEntriesResponse, out *raft.AppendEntriesResponse) {
	*out = raft.AppendEntriesResponse{
		RPCHeader:      decodeHeader(r.GetHeader()),
		Term:           r.GetTerm(),
		LastLog:        r.GetLastLog(),
		Success:        r.GetSuccess(),
		NoRetryBackoff: r.GetNoRetryBackoff(),
	}
}

func encodeRequestVoteRequest(channel string, r *raft.RequestVoteRequest) *raftpb.RequestVoteRequest {
	return &raftpb.RequestVoteRequest{
		Channel:            channel,
		Header:             encodeHeader(r.RPCHeader),
		Term:               r.Term,
		Candidate:          r.Candidate,
		LastLogIndex:       r.LastLogIndex,
		LastLogTerm:        r.LastLogTerm,
		LeadershipTransfer: r.LeadershipTransfer,
	}
}

func decodeRequestVoteRequest(r *raftpb.RequestVoteRequest) *raft.RequestVoteRequest {
	return &raft.RequestVoteRequest{
		RPCHeader:          decodeHeader(r.GetHeader()),
		Term:               r.GetTerm(),
		Candidate:          r.GetCandidate(),
		LastLogIndex:       r.GetLastLogIndex(),
		LastLogTerm:        r.GetLastLogTerm(),
		LeadershipTransfer: r.GetLeadershipTransfer(),
	}
}

func encodeRequestVoteResponse(r *raft.RequestVoteResponse) *raftpb.RequestVoteResponse {
	return &raftpb.RequestVoteResponse{
		Header:  encodeHeader(r.RPCHeader),
		Term:    r.Term,
		Peers:   r.Peers,
		Granted: r.Granted,
	}
}

func decodeRequestVoteResponse(r *raftpb.RequestVoteResponse, out *raft.RequestVoteResponse) {
	*out = raft.RequestVoteResponse{
		RPCHeader: decodeHeader(r.GetHeader()),
		Term:      r.GetTerm(),
		Peers:     r.GetPeers(),
		Granted:   r.GetGranted(),
	}
}

func encodeRequestPreVoteRequest(channel string, r *raft.RequestPreVoteRequest) *raftpb.RequestPreVoteRequest {
	return &raftpb.RequestPreVoteRequest{
		Channel:      channel,
		Header:       encodeHeader(r.RPCHeader),
		Term:         r.Term,
		LastLogIndex: r.LastLogIndex,
		LastLogTerm:  r.LastLogTerm,
	}
}

func decodeRequestPreVoteRequest(r *raftpb.RequestPreVoteRequest) *raft.RequestPreVoteRequest {
	return &raft.RequestPreVoteRequest{
		RPCHeader:    decodeHeader(r.GetHeader()),
		Term:         r.GetTerm(),
		LastLogIndex: r.GetLastLogIndex(),
		LastLogTerm:  r.GetLastLogTerm(),
	}
}

func encodeRequestPreVoteResponse(r *raft.RequestPreVoteResponse) *raftpb.RequestPreVoteResponse {
	return &raftpb.RequestPreVoteResponse{
		Header:  encodeHeader(r.RPCHeader),
		Term:    r.Term,
		Granted: r.Granted,
	}
}

func decodeRequestPreVoteResponse(r *raftpb.RequestPreVoteResponse, out *raft.RequestPreVoteResponse) {
	*out = raft.RequestPreVoteResponse{
		RPCHeader: decodeHeader(r.GetHeader()),
		Term:      r.GetTerm(),
		Granted:   r.GetGranted(),
	}
}

func encodeTimeoutNowRequest(channel string, r *raft.TimeoutNowRequest) *raftpb.TimeoutNowRequest {
	return &raftpb.TimeoutNowRequest{Channel: channel, Header: encodeHeader(r.RPCHeader)}
}

func decodeTimeoutNowRequest(r *raftpb.TimeoutNowRequest) *raft.TimeoutNowRequest {
	return &raft.TimeoutNowRequest{RPCHeader: decodeHeader(r.GetHeader())}
}

func encodeTimeoutNowResponse(r *raft.TimeoutNowResponse) *raftpb.TimeoutNowResponse {
	return &raftpb.TimeoutNowResponse{Header: encodeHeader(r.RPCHeader)}
}

func decodeTimeoutNowResponse(r *raftpb.TimeoutNowResponse, out *raft.TimeoutNowResponse) {
	*out = raft.TimeoutNowResponse{RPCHeader: decodeHeader(r.GetHeader())}
}

func encodeInstallSnapshotRequest(channel string, r *raft.InstallSnapshotRequest) *raftpb.InstallSnapshotRequest {
	return &raftpb.InstallSnapshotRequest{
		Channel:            channel,
		Header:             encodeHeader(r.RPCHeader),
		SnapshotVersion:    int64(r.SnapshotVersion),
		Term:               r.Term,
		Leader:             r.Leader,
		LastLogIndex:       r.LastLogIndex,
		LastLogTerm:        r.LastLogTerm,
		Peers:              r.Peers,
		Configuration:      r.Configuration,
		ConfigurationIndex: r.ConfigurationIndex,
		Size:               r.Size,
	}
}

func decodeInstallSnapshotRequest(r *raftpb.InstallSnapshotRequest) *raft.InstallSnapshotRequest {
	return &raft.InstallSnapshotRequest{
		RPCHeader:          decodeHeader(r.GetHeader()),
		SnapshotVersion:    raft.SnapshotVersion(r.GetSnapshotVersion()),
		Term:               r.GetTerm(),
		Leader:             r.GetLeader(),
		LastLogIndex:       r.GetLastLogIndex(),
		LastLogTerm:        r.GetLastLogTerm(),
		Peers:              r.GetPeers(),
		Configuration:      r.GetConfiguration(),
		ConfigurationIndex: r.GetConfigurationIndex(),
		Size:               r.GetSize(),
	}
}

func encodeInstallSnapshotResponse(r *raft.InstallSnapshotResponse) *raftpb.InstallSnapshotResponse {
	return &raftpb.InstallSnapshotResponse{
		Header:  encodeHeader(r.RPCHeader),
		Term:    r.Term,
		Success: r.Success,
	}
}

func decodeInstallSnapshotResponse(r *raftpb.InstallSnapshotResponse, out *raft.InstallSnapshotResponse) {
	*out = raft.InstallSnapshotResponse{
		RPCHeader: decodeHeader(r.GetHeader()),
		Term:      r.GetTerm(),
		Success:   r.GetSuccess(),
	}
}
