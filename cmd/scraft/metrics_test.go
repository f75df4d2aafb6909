package main

import (
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestMetricsRegistered: the node's registry holds the client API's
// counters beside the cluster's, and every counter is named with _total.
func TestMetricsRegistered(t *testing.T) {
	r, _, _ := startAPINode(t, 16)
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
		if strings.HasPrefix(f.GetName(), "scraft_") && f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(f.GetName(), "_total") {
			t.Errorf("counter %s is not named _total", f.GetName())
		}
	}
	for _, name := range []string{
		"scraft_client_streams", "scraft_client_calls_in_flight", "scraft_client_subscriptions",
		"scraft_client_busy_total", "scraft_client_subscribers_dropped_total", "scraft_client_streams_refused_total",
		"scraft_connections", "scraft_connections_refused_total",
		"scraft_entries_applied_total", "scraft_height", "scraft_leader_epoch", "scraft_batches_applied_total",
		"scraft_build_info", "scraft_leading", "scraft_raft_state",
		"scraft_chain_calls_total", "scraft_chain_call_seconds",
	} {
		if byName[name] == nil {
			t.Errorf("metric %s is not registered", name)
		}
	}
}
