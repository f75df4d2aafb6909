package contracts

import (
	"strings"
	"testing"
)

func TestEditorRun(t *testing.T) {
	h := newTestHost(t, "editor")
	alice, bob := addr(0xa1), addr(0xb0)

	h.mustAbort(alice, "create_document", `{"title":"x"}`, 100)
	h.mustCall(alice, "init", `{}`)
	out := h.mustCall(alice, "create_document", `{"title":"Plan"}`)
	if j, _ := h.abi.DecodeOutput("create_document", out); string(j) != "1" {
		t.Fatalf("doc id %s", j)
	}
	h.mustAbort(alice, "create_document", `{"title":""}`, 106)
	h.mustAbort(bob, "create_element", `{"doc":9,"kind":"p","data":"x"}`, 101)

	out = h.mustCall(bob, "create_element", `{"doc":1,"kind":"paragraph","data":"hello"}`)
	if j, _ := h.abi.DecodeOutput("create_element", out); string(j) != "1" {
		t.Fatalf("element id %s", j)
	}
	h.mustCall(alice, "create_element", `{"doc":1,"kind":"heading","data":"Title"}`)

	// Optimistic concurrency: both edit version 1, the second one is stale.
	out = h.mustCall(alice, "update_element", `{"doc":1,"element":1,"version":1,"data":"hello, bob"}`)
	if j, _ := h.abi.DecodeOutput("update_element", out); string(j) != "2" {
		t.Fatalf("new version %s", j)
	}
	ab := h.mustAbort(bob, "update_element", `{"doc":1,"element":1,"version":1,"data":"hello?"}`, 103)
	if !strings.Contains(ab.msg, "stale version 1 of element 1 (now 2)") {
		t.Fatalf("abort message %q", ab.msg)
	}
	h.mustAbort(bob, "update_element", `{"doc":1,"element":7,"version":1,"data":""}`, 102)
	h.mustAbort(bob, "delete_element", `{"doc":1,"element":1,"version":1}`, 103)

	got := h.resource(derived("edel", 1, 1, 0), "editor::Element")
	if !strings.Contains(got, `"data":"hello, bob","version":2,"author":"0xa1a1`) {
		t.Fatalf("element = %s", got)
	}

	out = h.mustCall(bob, "get_document", `{"doc":1}`)
	view, err := h.abi.DecodeOutput("get_document", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(view), `"title":"Plan","next_element":3,"elements":[1,2]}`) || strings.Count(string(view), `"kind"`) != 2 {
		t.Fatalf("view = %s", view)
	}

	h.mustCall(bob, "delete_element", `{"doc":1,"element":1,"version":2}`)
	if h.count("editor::Element") != 1 {
		t.Fatal("element 1 not deleted")
	}
	if got := h.resource(derived("edoc", 1, 0, 0), "editor::Document"); !strings.HasSuffix(got, `"elements":[2]}`) {
		t.Fatalf("document = %s", got)
	}

	h.mustAbort(bob, "delete_document", `{"doc":1}`, 104)
	h.mustCall(alice, "delete_document", `{"doc":1}`)
	if h.count("editor::Element") != 0 || h.count("editor::Document") != 0 {
		t.Fatal("document or elements left behind")
	}
	if got := h.resource(channelAccount, "editor::Registry"); got != `{"next_doc":2,"documents":0}` {
		t.Fatalf("registry = %s", got)
	}
}
