package protocol

import (
	"fmt"
	"testing"
)

func BenchmarkDiffTouched(b *testing.B) {
	before, after := State{}, State{}
	for i := range 8 {
		k := ResourceKey{Account: Address{byte(i), 7}, Type: "movecraft::Player"}
		before[k] = []byte{1, 2, 3, 4, 5, 6}
		after[k] = []byte{1, 2, 3, 4, 5, byte(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		Diff(before, after)
	}
}

func BenchmarkVerifyTxs64(b *testing.B) {
	txs := make([]*SignedTx, 64)
	for i := range txs {
		txs[i] = sampleTx(testKey(b, byte(i)))
	}
	b.ResetTimer()
	for b.Loop() {
		for _, err := range VerifyTxs(txs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64)/1000, "µs/sig")
}

func BenchmarkVerifyOneByOne64(b *testing.B) {
	txs := make([]*SignedTx, 64)
	for i := range txs {
		txs[i] = sampleTx(testKey(b, byte(i)))
	}
	b.ResetTimer()
	for b.Loop() {
		for _, tx := range txs {
			if err := tx.Verify(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64)/1000, "µs/sig")
}

// BenchmarkVerifyTxs: batches of n txs from a channel's members, who sign
// batch after batch (the same keys again and again).
func BenchmarkVerifyTxs(b *testing.B) {
	for _, n := range []int{16, 64, 256} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			txs := make([]*SignedTx, n)
			for i := range txs {
				txs[i] = sampleTx(testKey(b, byte(i)))
			}
			for b.Loop() {
				for _, err := range VerifyTxs(txs) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "µs/sig")
		})
	}
}

func BenchmarkSign(b *testing.B) {
	k := testKey(b, 1)
	msg := make([]byte, 200)
	for b.Loop() {
		k.Sign(DomainTx, msg)
	}
}
