package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// answerChain answers KeepAlive with the error it is given; every other
// method is absent (a call would panic, and the test makes none).
type answerChain struct {
	Chain
	err error
}

func (a answerChain) KeepAlive(ctx context.Context, id protocol.ChannelID) error { return a.err }

// TestChainCallsCounted: each chain call is counted once under its
// method, and a contract's refusal, a failure to answer and a caller that
// gave up are told apart.
func TestChainCallsCounted(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		ctx    context.Context
		err    error
		result string
	}{
		{context.Background(), nil, "ok"},
		{context.Background(), fmt.Errorf("keep alive: %w", contract.ErrNotMember), "refused"},
		{context.Background(), errors.New("rpc error: code = Unavailable desc = connection refused"), "error"},
		{context.Background(), context.DeadlineExceeded, "error"},
		{canceled, context.Canceled, "canceled"},
	} {
		reg := prometheus.NewRegistry()
		chain, err := meterChain(answerChain{err: tc.err}, reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := chain.KeepAlive(tc.ctx, protocol.ChannelID{1}); !errors.Is(err, tc.err) {
			t.Fatalf("KeepAlive returned %v, want %v", err, tc.err)
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var series []string
		for _, f := range families {
			if f.GetName() != "scraft_chain_calls_total" {
				continue
			}
			for _, s := range f.GetMetric() {
				series = append(series, fmt.Sprintf("%s/%s=%v", label(s, "method"), label(s, "result"), s.GetCounter().GetValue()))
			}
		}
		if want := "keep_alive/" + tc.result + "=1"; len(series) != 1 || series[0] != want {
			t.Errorf("%v: counted %v, want [%s]", tc.err, series, want)
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
