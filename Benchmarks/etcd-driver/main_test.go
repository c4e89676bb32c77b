package main

// The pure parts of the driver. Run in GOPATH mode (not part of `make test`, which has no Go):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go test ./Benchmarks/etcd-driver

import (
	"math/rand"
	"testing"
	"time"
)

func TestKeysArePaddedToKeySize(t *testing.T) {
	cases := []struct {
		index, size int
		want        string
	}{
		{0, 16, "k000000000000000"},
		{99999, 16, "k000000000099999"},
		{7, 2, "k7"},
		{123, 4, "k123"},
	}
	for _, c := range cases {
		if got := makeKey(c.index, c.size); got != c.want {
			t.Errorf("makeKey(%d, %d) = %q, want %q", c.index, c.size, got, c.want)
		}
		if got := string(appendKey([]byte("junk")[:0], c.index, c.size)); got != c.want {
			t.Errorf("appendKey(%d, %d) = %q, want %q", c.index, c.size, got, c.want)
		}
	}
	if minKeySize(100000) != 6 || minKeySize(1) != 2 || minKeySize(10) != 2 || minKeySize(11) != 3 {
		t.Errorf("minKeySize: got %d %d %d %d", minKeySize(100000), minKeySize(1), minKeySize(10), minKeySize(11))
	}
}

func TestKeysAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		k := makeKey(i, 16)
		if len(k) != 16 || seen[k] {
			t.Fatalf("key %d: %q (len %d, duplicate %v)", i, k, len(k), seen[k])
		}
		seen[k] = true
	}
}

func TestValue(t *testing.T) {
	v := makeValue(100)
	if len(v) != 100 || string(v) != string(makeValue(100)) {
		t.Fatalf("value: %q", v)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 1000; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500}, {0.9, 900}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0.0001, 1}} {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("percentile(1..1000, %g) = %d, want %d", c.q, got, c.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of no samples")
	}
	one := []time.Duration{42}
	if percentile(one, 0.5) != 42 || percentile(one, 0.999) != 42 {
		t.Error("percentile of one sample")
	}
}

func TestChoosersStayInKeyspace(t *testing.T) {
	const n = 1000
	var counter uint64
	seq := &sequentialChooser{counter: &counter, n: n}
	for i := 0; i < 2*n+5; i++ {
		if got := seq.next(); got != i%n {
			t.Fatalf("sequential %d: got %d", i, got)
		}
	}
	z := newZipfianParams(n).chooser(rand.New(rand.NewSource(1)))
	u := &uniformChooser{r: rand.New(rand.NewSource(1)), n: n}
	hits := map[int]int{}
	for i := 0; i < 100000; i++ {
		k := z.next()
		if k < 0 || k >= n {
			t.Fatalf("zipfian out of range: %d", k)
		}
		hits[k]++
		if k := u.next(); k < 0 || k >= n {
			t.Fatalf("uniform out of range: %d", k)
		}
	}
	// Skewed: the most popular key gets far more than the uniform share (100 of 100,000).
	top := 0
	for _, h := range hits {
		if h > top {
			top = h
		}
	}
	if top < 1000 {
		t.Errorf("zipfian looks uniform: top key hit %d times", top)
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"--workload", "ycsb-b", "--endpoints", "http://a:1, b:2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.readRatio != 0.95 || c.distribution != "zipfian" || len(c.endpoints) != 2 || c.endpoints[0] != "a:1" || c.endpoints[1] != "b:2" {
		t.Errorf("parsed %+v", c)
	}
	if _, err := parseFlags([]string{"--workload", "write", "--read-ratio", "0.3"}); err == nil {
		t.Error("--read-ratio with --workload write was accepted")
	}
	if _, err := parseFlags([]string{"--key-size", "5", "--keyspace", "100000"}); err == nil {
		t.Error("a key size too small for the keyspace was accepted")
	}
	c, err = parseFlags([]string{"--clients", "1"})
	if err != nil || c.connections != 1 {
		t.Errorf("connections not capped at clients: %v %+v", err, c)
	}
}
