// etcd-driver is a closed-loop load driver for etcd 3.4, the baseline of `make bench-compare`. It takes the same
// knobs, with the same names, as bifrost-loadgen and prints the same report, so the two can be compared row by row.
//
// It is built in GOPATH mode against Debian's packaged clientv3 (package golang-etcd-server-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o .build/etcd-driver ./Benchmarks/etcd-driver
//
// Each of --clients goroutines issues one request at a time. Over gRPC, the clients share --connections clientv3
// clients, handed out round-robin; each connection dials one endpoint, also round-robin (what etcd's own
// tools/benchmark does). Over HTTP, the clients share --connections keep-alive HTTP/1.1 connections to etcd's JSON
// gateway; HTTP/1.1 carries one request at a time per connection, so at most --connections requests are in flight.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// config holds the parsed command line.
type config struct {
	endpoints    []string
	workload     string
	readRatio    float64
	clients      int
	connections  int
	keySize      int
	valueSize    int
	keyspace     int
	distribution string
	preload      bool
	consistency  string
	warmup       float64
	duration     float64
	protocol     string
	timeout      float64
	targetLeader bool
	jsonOutput   bool
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("etcd-driver", flag.ContinueOnError)
	c := &config{}
	endpoints := fs.String("endpoints", "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379", "comma-separated etcd client endpoints, host:port")
	fs.StringVar(&c.workload, "workload", "write", "write | read | mixed | ycsb-a | ycsb-b | ycsb-c")
	fs.Float64Var(&c.readRatio, "read-ratio", 0.5, "fraction of reads for --workload mixed")
	fs.IntVar(&c.clients, "clients", 64, "concurrent closed-loop clients (one request in flight each)")
	fs.IntVar(&c.connections, "connections", 8, "clientv3 clients (gRPC) or keep-alive HTTP connections; clients are spread over them round-robin")
	fs.IntVar(&c.keySize, "key-size", 16, "key size in bytes")
	fs.IntVar(&c.valueSize, "value-size", 100, "value size in bytes")
	fs.IntVar(&c.keyspace, "keyspace", 100000, "number of distinct keys")
	fs.StringVar(&c.distribution, "distribution", "", "uniform | sequential | zipfian (default: zipfian for ycsb-*, uniform otherwise)")
	fs.BoolVar(&c.preload, "preload", false, "write every key of the keyspace once before the warm-up")
	fs.StringVar(&c.consistency, "consistency", "linearizable", "reads: linearizable | serializable")
	fs.Float64Var(&c.warmup, "warmup", 2, "warm-up seconds (load applied, nothing recorded)")
	fs.Float64Var(&c.duration, "duration", 10, "measured seconds")
	fs.StringVar(&c.protocol, "protocol", "grpc", "grpc | http (etcd's JSON gateway, /v3/kv/put and /v3/kv/range)")
	fs.Float64Var(&c.timeout, "timeout", 10, "per-request timeout in seconds")
	fs.BoolVar(&c.targetLeader, "target-leader", false, "send every connection to the leader's endpoint instead of spreading them")
	fs.BoolVar(&c.jsonOutput, "json", false, "print one JSON object instead of the text report")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	readRatioSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "read-ratio" {
			readRatioSet = true
		}
	})
	for _, e := range strings.Split(*endpoints, ",") {
		e = strings.TrimSpace(e)
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		if e != "" {
			c.endpoints = append(c.endpoints, e)
		}
	}
	if len(c.endpoints) == 0 {
		return nil, errors.New("--endpoints: none given")
	}
	switch c.workload {
	case "write":
		c.readRatio = 0
	case "read", "ycsb-c":
		c.readRatio = 1
	case "ycsb-a":
		c.readRatio = 0.5
	case "ycsb-b":
		c.readRatio = 0.95
	case "mixed":
		if c.readRatio < 0 || c.readRatio > 1 {
			return nil, errors.New("--read-ratio must be within [0, 1]")
		}
	default:
		return nil, fmt.Errorf("--workload %q: expected write, read, mixed, ycsb-a, ycsb-b or ycsb-c", c.workload)
	}
	if readRatioSet && c.workload != "mixed" {
		return nil, fmt.Errorf("--read-ratio applies to --workload mixed only (%s fixes it at %g)", c.workload, c.readRatio)
	}
	if c.distribution == "" {
		c.distribution = "uniform"
		if strings.HasPrefix(c.workload, "ycsb-") {
			c.distribution = "zipfian"
		}
	}
	switch c.distribution {
	case "uniform", "sequential", "zipfian":
	default:
		return nil, fmt.Errorf("--distribution %q: expected uniform, sequential or zipfian", c.distribution)
	}
	switch c.consistency {
	case "linearizable", "serializable":
	default:
		return nil, fmt.Errorf("--consistency %q: expected linearizable or serializable", c.consistency)
	}
	switch c.protocol {
	case "grpc", "http":
	default:
		return nil, fmt.Errorf("--protocol %q: expected grpc or http", c.protocol)
	}
	if c.clients < 1 || c.connections < 1 {
		return nil, errors.New("--clients and --connections must be at least 1")
	}
	if c.connections > c.clients {
		c.connections = c.clients
	}
	if c.keyspace < 1 {
		return nil, errors.New("--keyspace must be at least 1")
	}
	if c.keySize < minKeySize(c.keyspace) {
		return nil, fmt.Errorf("--key-size %d is too small for --keyspace %d (at least %d)", c.keySize, c.keyspace, minKeySize(c.keyspace))
	}
	if c.valueSize < 0 || c.warmup < 0 || c.duration <= 0 || c.timeout <= 0 {
		return nil, errors.New("--value-size and --warmup must not be negative; --duration and --timeout must be positive")
	}
	return c, nil
}

// Keys are "k" followed by the key's index in decimal, zero-padded to exactly keySize bytes: the same keys as
// bifrost's map-bench ("k" and 15 digits at 16 bytes).

func minKeySize(keyspace int) int {
	return 1 + len(strconv.Itoa(keyspace-1))
}

func appendKey(dst []byte, index int, keySize int) []byte {
	digits := strconv.AppendInt(nil, int64(index), 10)
	dst = append(dst, 'k')
	for i := len(digits) + 1; i < keySize; i++ {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}

func makeKey(index int, keySize int) string {
	return string(appendKey(make([]byte, 0, keySize), index, keySize))
}

// makeValue returns valueSize printable bytes, the same for every request.
func makeValue(valueSize int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewSource(42))
	v := make([]byte, valueSize)
	for i := range v {
		v[i] = alphabet[r.Intn(len(alphabet))]
	}
	return v
}

// keyChooser picks the next key index. One per client (not safe for concurrent use) except for the shared
// sequential counter.
type keyChooser interface {
	next() int
}

type uniformChooser struct {
	r *rand.Rand
	n int
}

func (u *uniformChooser) next() int { return u.r.Intn(u.n) }

type sequentialChooser struct {
	counter *uint64
	n       int
}

func (s *sequentialChooser) next() int {
	return int((atomic.AddUint64(s.counter, 1) - 1) % uint64(s.n))
}

// zipfianChooser is YCSB's scrambled zipfian generator (Gray et al., "Quickly generating billion-record synthetic
// databases"), constant 0.99: popular items are hashed over the whole keyspace rather than clustered at 0.
type zipfianChooser struct {
	r                                *rand.Rand
	n                                int
	theta, alpha, zetan, eta, zeta2t float64
}

const zipfianConstant = 0.99

func zeta(n int, theta float64) float64 {
	sum := 0.0
	for i := 1; i <= n; i++ {
		sum += 1 / math.Pow(float64(i), theta)
	}
	return sum
}

// zipfianParams holds the values that depend only on the keyspace, computed once and shared by all clients.
type zipfianParams struct {
	n                                int
	theta, alpha, zetan, eta, zeta2t float64
}

func newZipfianParams(n int) zipfianParams {
	theta := zipfianConstant
	zetan := zeta(n, theta)
	zeta2t := zeta(2, theta)
	return zipfianParams{
		n:      n,
		theta:  theta,
		alpha:  1 / (1 - theta),
		zetan:  zetan,
		zeta2t: zeta2t,
		eta:    (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2t/zetan),
	}
}

func (p zipfianParams) chooser(r *rand.Rand) *zipfianChooser {
	return &zipfianChooser{r: r, n: p.n, theta: p.theta, alpha: p.alpha, zetan: p.zetan, eta: p.eta, zeta2t: p.zeta2t}
}

func (z *zipfianChooser) rank() int {
	u := z.r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < 1+math.Pow(0.5, z.theta) {
		return 1
	}
	v := int(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if v >= z.n {
		v = z.n - 1
	}
	return v
}

func (z *zipfianChooser) next() int {
	return int(fnv64(uint64(z.rank())) % uint64(z.n))
}

// fnv64 is FNV-1a over the 8 little-endian bytes of x, as YCSB scrambles zipfian ranks.
func fnv64(x uint64) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < 8; i++ {
		h ^= x & 0xff
		h *= 0x100000001b3
		x >>= 8
	}
	return h
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted samples: the smallest sample with at least
// q of all samples at or below it. Zero for no samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// backend is one connection's way of reaching etcd.
type backend interface {
	put(ctx context.Context, key string, value []byte) error
	get(ctx context.Context, key string) error
	close()
}

type grpcBackend struct {
	client *clientv3.Client
	opts   []clientv3.OpOption
}

func (g *grpcBackend) put(ctx context.Context, key string, value []byte) error {
	_, err := g.client.Put(ctx, key, string(value))
	return err
}

func (g *grpcBackend) get(ctx context.Context, key string) error {
	_, err := g.client.Get(ctx, key, g.opts...)
	return err
}

func (g *grpcBackend) close() { g.client.Close() }

type httpBackend struct {
	client       *http.Client
	base         string
	serializable bool
}

// httpStatusError is a non-2xx answer of the gateway.
type httpStatusError struct{ code int }

func (e httpStatusError) Error() string { return "HTTP " + strconv.Itoa(e.code) }

func (h *httpBackend) post(ctx context.Context, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	// Read the whole body so that the connection is reused.
	_, copyErr := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpStatusError{resp.StatusCode}
	}
	return copyErr
}

func (h *httpBackend) put(ctx context.Context, key string, value []byte) error {
	body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `","value":"` + base64.StdEncoding.EncodeToString(value) + `"}`
	return h.post(ctx, "/v3/kv/put", []byte(body))
}

func (h *httpBackend) get(ctx context.Context, key string) error {
	body := `{"key":"` + base64.StdEncoding.EncodeToString([]byte(key)) + `"`
	if h.serializable {
		body += `,"serializable":true`
	}
	body += "}"
	return h.post(ctx, "/v3/kv/range", []byte(body))
}

func (h *httpBackend) close() { h.client.CloseIdleConnections() }

// errorKind names an error for the errors_by_kind table.
func errorKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var hs httpStatusError
	if errors.As(err, &hs) {
		return "http_" + strconv.Itoa(hs.code)
	}
	// clientv3 turns the server's errors into rpctypes.EtcdError ("etcdserver: request timed out", ...): a small,
	// fixed set, so their text is the kind.
	var ee interface{ Code() codes.Code }
	if errors.As(err, &ee) {
		if ee.Code() == codes.DeadlineExceeded {
			return "timeout"
		}
		return err.Error()
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK && s.Code() != codes.Unknown {
		if s.Code() == codes.DeadlineExceeded {
			return "timeout"
		}
		return "grpc_" + s.Code().String()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "timeout"
		}
		return "network"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "network"
	}
	return "other"
}

// leaderEndpoint asks the cluster which member leads and returns that member's first client URL as host:port.
func leaderEndpoint(endpoints []string) (string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var leader uint64
	for _, ep := range endpoints {
		if s, err := cli.Status(ctx, ep); err == nil && s.Leader != 0 {
			leader = s.Leader
			break
		}
	}
	if leader == 0 {
		return "", errors.New("no member reports a leader")
	}
	members, err := cli.MemberList(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range members.Members {
		if m.ID == leader && len(m.ClientURLs) > 0 {
			u := m.ClientURLs[0]
			return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"), nil
		}
	}
	return "", fmt.Errorf("leader %x not in the member list", leader)
}

func connect(c *config) ([]backend, error) {
	endpoints := c.endpoints
	if c.targetLeader {
		leader, err := leaderEndpoint(c.endpoints)
		if err != nil {
			return nil, fmt.Errorf("finding the leader: %w", err)
		}
		endpoints = []string{leader}
	}
	conns := make([]backend, c.connections)
	for i := range conns {
		endpoint := endpoints[i%len(endpoints)]
		switch c.protocol {
		case "grpc":
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
			if err != nil {
				for _, b := range conns[:i] {
					b.close()
				}
				return nil, fmt.Errorf("dialing %s: %w", endpoint, err)
			}
			var opts []clientv3.OpOption
			if c.consistency == "serializable" {
				opts = append(opts, clientv3.WithSerializable())
			}
			conns[i] = &grpcBackend{client: cli, opts: opts}
		case "http":
			transport := &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        1,
				MaxIdleConnsPerHost: 1,
				MaxConnsPerHost:     1,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
				ForceAttemptHTTP2:   false,
			}
			conns[i] = &httpBackend{
				client:       &http.Client{Transport: transport},
				base:         "http://" + endpoint,
				serializable: c.consistency == "serializable",
			}
		}
	}
	return conns, nil
}

// Phases of the run, read by every client before each request.
const (
	phasePreload int32 = iota
	phaseWarmup
	phaseMeasure
	phaseStop
)

// clientResult is what one client recorded during the measured phase.
type clientResult struct {
	samples []time.Duration
	errors  map[string]int
}

type run struct {
	cfg     *config
	conns   []backend
	value   []byte
	zipf    zipfianParams
	seq     uint64
	phase   int32
	started int64 // UnixNano at which the measured phase began
	// Progress counters over all phases.
	done   int64
	failed int64
}

func (r *run) chooser(id int) keyChooser {
	rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(id)*7919))
	switch r.cfg.distribution {
	case "sequential":
		return &sequentialChooser{counter: &r.seq, n: r.cfg.keyspace}
	case "zipfian":
		return r.zipf.chooser(rng)
	default:
		return &uniformChooser{r: rng, n: r.cfg.keyspace}
	}
}

// client runs one closed loop until the phase becomes phaseStop.
func (r *run) client(id int, out *clientResult, wg *sync.WaitGroup) {
	defer wg.Done()
	conn := r.conns[id%len(r.conns)]
	keys := r.chooser(id)
	rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(id)*104729))
	keyBuf := make([]byte, 0, r.cfg.keySize)
	timeout := time.Duration(r.cfg.timeout * float64(time.Second))
	out.errors = map[string]int{}
	for atomic.LoadInt32(&r.phase) != phaseStop {
		keyBuf = appendKey(keyBuf[:0], keys.next(), r.cfg.keySize)
		key := string(keyBuf)
		isRead := r.cfg.readRatio >= 1 || (r.cfg.readRatio > 0 && rng.Float64() < r.cfg.readRatio)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		var err error
		if isRead {
			err = conn.get(ctx, key)
		} else {
			err = conn.put(ctx, key, r.value)
		}
		end := time.Now()
		cancel()
		if err != nil {
			atomic.AddInt64(&r.failed, 1)
		} else {
			atomic.AddInt64(&r.done, 1)
		}
		// Record the requests that complete within the measured window (whenever they started): in a closed loop
		// this counts the window's throughput without bias at either edge.
		if atomic.LoadInt32(&r.phase) == phaseMeasure && end.UnixNano() >= atomic.LoadInt64(&r.started) {
			if err != nil {
				out.errors[errorKind(err)]++
			} else {
				out.samples = append(out.samples, end.Sub(start))
			}
		}
	}
}

// preload writes every key once, with all clients over conns, and returns the number of failed writes. It always
// goes over gRPC: it is set-up, not measurement, and over HTTP/1.1 only --connections writes would be in flight.
func (r *run) preloadKeys(conns []backend) (int64, time.Duration) {
	var next int64 = -1
	var failed int64
	var wg sync.WaitGroup
	start := time.Now()
	timeout := time.Duration(r.cfg.timeout * float64(time.Second))
	for id := 0; id < r.cfg.clients; id++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			conn := conns[id%len(conns)]
			buf := make([]byte, 0, r.cfg.keySize)
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(r.cfg.keyspace) {
					return
				}
				buf = appendKey(buf[:0], int(i), r.cfg.keySize)
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := conn.put(ctx, string(buf), r.value)
				cancel()
				if err != nil {
					atomic.AddInt64(&failed, 1)
					atomic.AddInt64(&r.failed, 1)
				} else {
					atomic.AddInt64(&r.done, 1)
				}
			}
		}(id)
	}
	wg.Wait()
	return failed, time.Since(start)
}

// progress prints one line a second to stderr until stop is closed.
func (r *run) progress(stop <-chan struct{}, finished chan<- struct{}) {
	defer close(finished)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	names := map[int32]string{phasePreload: "preload", phaseWarmup: "warmup", phaseMeasure: "measure", phaseStop: "stop"}
	begin := time.Now()
	var lastDone, lastFailed int64
	for {
		select {
		case <-stop:
			return
		case now := <-ticker.C:
			done, failed := atomic.LoadInt64(&r.done), atomic.LoadInt64(&r.failed)
			fmt.Fprintf(os.Stderr, "etcd-driver %5.1fs %-8s %8d ops/s  %6d errors/s  (total %d ok, %d errors)\n",
				now.Sub(begin).Seconds(), names[atomic.LoadInt32(&r.phase)], done-lastDone, failed-lastFailed, done, failed)
			lastDone, lastFailed = done, failed
		}
	}
}

// report is the result, printed as text or as the JSON object shared with bifrost-loadgen.
type report struct {
	Tool         string             `json:"tool"`
	Target       string             `json:"target"`
	Parameters   map[string]any     `json:"parameters"`
	Requests     int                `json:"requests"`
	Errors       int                `json:"errors"`
	ErrorsByKind map[string]int     `json:"errors_by_kind"`
	DurationS    float64            `json:"duration_s"`
	OpsPerSec    float64            `json:"ops_per_sec"`
	LatencyMs    map[string]float64 `json:"latency_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// round3 keeps three decimals (microsecond resolution for milliseconds).
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func summarize(c *config, results []clientResult, measured time.Duration) report {
	var samples []time.Duration
	errs := map[string]int{}
	nErrors := 0
	for _, r := range results {
		samples = append(samples, r.samples...)
		for k, v := range r.errors {
			errs[k] += v
			nErrors += v
		}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	mean := 0.0
	if len(samples) > 0 {
		mean = ms(sum) / float64(len(samples))
	}
	var max time.Duration
	if len(samples) > 0 {
		max = samples[len(samples)-1]
	}
	secs := measured.Seconds()
	return report{
		Tool:         "etcd-driver",
		Target:       "etcd-" + c.protocol,
		Parameters:   parameters(c),
		Requests:     len(samples),
		Errors:       nErrors,
		ErrorsByKind: errs,
		DurationS:    round3(secs),
		OpsPerSec:    math.Round(float64(len(samples))/secs*10) / 10,
		LatencyMs: map[string]float64{
			"mean": round3(mean),
			"p50":  round3(ms(percentile(samples, 0.50))),
			"p90":  round3(ms(percentile(samples, 0.90))),
			"p99":  round3(ms(percentile(samples, 0.99))),
			"p999": round3(ms(percentile(samples, 0.999))),
			"max":  round3(ms(max)),
		},
	}
}

func parameters(c *config) map[string]any {
	return map[string]any{
		"endpoints":     strings.Join(c.endpoints, ","),
		"workload":      c.workload,
		"read_ratio":    c.readRatio,
		"clients":       c.clients,
		"connections":   c.connections,
		"key_size":      c.keySize,
		"value_size":    c.valueSize,
		"keyspace":      c.keyspace,
		"distribution":  c.distribution,
		"preload":       c.preload,
		"consistency":   c.consistency,
		"warmup_s":      c.warmup,
		"duration_s":    c.duration,
		"protocol":      c.protocol,
		"timeout_s":     c.timeout,
		"target_leader": c.targetLeader,
	}
}

func printText(w io.Writer, c *config, rep report) {
	fmt.Fprintf(w, "etcd-driver target=%s protocol=%s endpoints=%s target_leader=%v workload=%s read_ratio=%g clients=%d connections=%d key_size=%d value_size=%d keyspace=%d distribution=%s preload=%v consistency=%s warmup=%gs duration=%gs timeout=%gs\n",
		rep.Target, c.protocol, strings.Join(c.endpoints, ","), c.targetLeader, c.workload, c.readRatio, c.clients, c.connections,
		c.keySize, c.valueSize, c.keyspace, c.distribution, c.preload, c.consistency, c.warmup, c.duration, c.timeout)
	fmt.Fprintf(w, "Summary:\n")
	fmt.Fprintf(w, "  Total:        %.4f secs.\n", rep.DurationS)
	fmt.Fprintf(w, "  Requests:     %d\n", rep.Requests)
	fmt.Fprintf(w, "  Requests/sec: %.1f\n", rep.OpsPerSec)
	fmt.Fprintf(w, "  Errors:       %d\n", rep.Errors)
	fmt.Fprintf(w, "Latency (ms):\n")
	for _, k := range []string{"mean", "p50", "p90", "p99", "p999", "max"} {
		fmt.Fprintf(w, "  %-5s %10.3f\n", k, rep.LatencyMs[k])
	}
	if len(rep.ErrorsByKind) > 0 {
		fmt.Fprintf(w, "Errors by kind:\n")
		kinds := make([]string, 0, len(rep.ErrorsByKind))
		for k := range rep.ErrorsByKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(w, "  %-24s %d\n", k, rep.ErrorsByKind[k])
		}
	}
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "etcd-driver:", err)
		os.Exit(2)
	}
	conns, err := connect(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-driver:", err)
		os.Exit(1)
	}
	r := &run{cfg: cfg, conns: conns, value: makeValue(cfg.valueSize)}
	if cfg.distribution == "zipfian" {
		r.zipf = newZipfianParams(cfg.keyspace)
	}

	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go r.progress(stopProgress, progressDone)

	if cfg.preload {
		preloadConns := conns
		if cfg.protocol != "grpc" {
			grpcCfg := *cfg
			grpcCfg.protocol = "grpc"
			if preloadConns, err = connect(&grpcCfg); err != nil {
				fmt.Fprintln(os.Stderr, "etcd-driver:", err)
				os.Exit(1)
			}
		}
		failed, took := r.preloadKeys(preloadConns)
		if cfg.protocol != "grpc" {
			for _, c := range preloadConns {
				c.close()
			}
		}
		fmt.Fprintf(os.Stderr, "etcd-driver preloaded %d keys in %.1fs (%d failed)\n", cfg.keyspace, took.Seconds(), failed)
		if failed > 0 {
			fmt.Fprintln(os.Stderr, "etcd-driver: preload failed; is the cluster up?")
			os.Exit(1)
		}
	}

	atomic.StoreInt32(&r.phase, phaseWarmup)
	results := make([]clientResult, cfg.clients)
	var wg sync.WaitGroup
	for id := 0; id < cfg.clients; id++ {
		wg.Add(1)
		go r.client(id, &results[id], &wg)
	}
	time.Sleep(time.Duration(cfg.warmup * float64(time.Second)))
	start := time.Now()
	atomic.StoreInt64(&r.started, start.UnixNano())
	atomic.StoreInt32(&r.phase, phaseMeasure)
	time.Sleep(time.Duration(cfg.duration * float64(time.Second)))
	// Requests still in flight when the window closes see phaseStop when they complete and are not recorded.
	atomic.StoreInt32(&r.phase, phaseStop)
	measured := time.Since(start)
	wg.Wait()
	close(stopProgress)
	<-progressDone
	for _, c := range conns {
		c.close()
	}

	rep := summarize(cfg, results, measured)
	if cfg.jsonOutput {
		out, err := json.Marshal(rep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd-driver:", err)
			os.Exit(1)
		}
		fmt.Println(string(out))
	} else {
		printText(os.Stdout, cfg, rep)
	}
	if rep.Requests == 0 {
		os.Exit(1)
	}
}
