package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// contender is one server under load: the upstream itself, the stock proxy, nginx or ours.
type contender struct {
	name    string
	base    string // base URL; load goes to base+benchPrefix+"1k", streams to base+benchPrefix+"big"
	pid     int    // the process measured (nginx: the master; its workers are found from it)
	cmd     *exec.Cmd
	stdin   io.Closer
	workers bool // measure the children of pid too (nginx)
}

// pids returns the processes whose CPU and memory count for the contender.
func (c *contender) pids() []int {
	if !c.workers {
		return []int{c.pid}
	}
	return append([]int{c.pid}, childrenOf(c.pid)...)
}

// loadResult is one wrk run.
type loadResult struct {
	contender string
	conns     int
	round     int
	rps       float64
	p50, p99  time.Duration
	requests  int64
	errors    int64 // non-2xx/3xx answers and socket errors
	cpuPerReq time.Duration
	peakRSS   int64 // bytes, VmHWM summed over the contender's processes
}

// streamResult is one streamed download.
type streamResult struct {
	contender string
	round     int
	mibps     float64
	bytes     int64
	status    int
	rssBefore int64
	peakRSS   int64
}

type runOptions struct {
	rounds    int
	duration  time.Duration
	conns     []int
	bigBytes  int64
	nginx     string
	wrk       string
	out       string
	streamRds int
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var o runOptions
	quick := fs.Bool("quick", false, "one round of 3 s per level and a 256 MiB stream (a smoke test, not for docs)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each round loads every contender at every connection count")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of one wrk run")
	connsFlag := fs.String("conns", "1,32,128", "connection counts")
	fs.Int64Var(&o.bigBytes, "stream-bytes", 1<<30, "size of the streamed download")
	fs.StringVar(&o.nginx, "nginx", "/usr/sbin/nginx", "nginx binary (skipped when missing)")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	fs.StringVar(&o.out, "out", "", "directory for results.md and raw.tsv (default: a new temporary directory)")
	fs.Parse(args)
	if *quick {
		o.rounds, o.duration, o.bigBytes = 1, 3*time.Second, 256<<20
	}
	o.streamRds = o.rounds
	for _, f := range strings.Split(*connsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("run: bad -conns %q", *connsFlag)
		}
		o.conns = append(o.conns, n)
	}
	if _, err := exec.LookPath(o.wrk); err != nil {
		return fmt.Errorf("run: wrk not found (apt-get install wrk, or scripts/deps.sh --test): %w", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return fmt.Errorf("run: curl not found: %w", err)
	}
	tmp, err := os.MkdirTemp("", "bench-proxy.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if o.out == "" {
		if o.out, err = os.MkdirTemp("", "bench-proxy-results."); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var all []*contender
	defer func() {
		for _, c := range all {
			c.stop()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	machine := describeMachine(o)
	fmt.Print(machine)

	logDir := o.out
	up, _, err := startChild(self, logDir, "upstream", "-big-bytes", strconv.FormatInt(o.bigBytes, 10))
	if err != nil {
		return err
	}
	all = append(all, up)
	ours, headerBytes, err := startChild(self, logDir, "ours", "-upstream", up.base)
	if err != nil {
		return err
	}
	all = append(all, ours)
	stock, _, err := startChild(self, logDir, "stock", "-upstream", up.base, "-header-bytes", strconv.Itoa(headerBytes))
	if err != nil {
		return err
	}
	all = append(all, stock)
	contenders := []*contender{up, stock}
	if _, err := os.Stat(o.nginx); err == nil {
		ng, err := startNginx(o.nginx, filepath.Join(tmp, "nginx"), up.base, fixedHeader(headerBytes))
		if err != nil {
			return err
		}
		all = append(all, ng)
		contenders = append(contenders, ng)
	} else {
		fmt.Printf("nginx: %s not found, skipped\n", o.nginx)
	}
	contenders = append(contenders, ours)
	fmt.Printf("Authorization header: %d bytes on every proxied request (ours: the sim's real token; stock and nginx: a fixed value of the same length)\n", headerBytes)
	fmt.Printf("contenders: %s\n\n", names(contenders))

	// Warm-up: connections, pools, page faults.
	for _, c := range contenders {
		if _, err := runWrk(ctx, o.wrk, c.base+benchPrefix+"1k", 32, 2*time.Second); err != nil {
			return fmt.Errorf("warming up %s: %w", c.name, err)
		}
	}

	raw, err := os.Create(filepath.Join(o.out, "raw.tsv"))
	if err != nil {
		return err
	}
	defer raw.Close()
	fmt.Fprintln(raw, "kind\tcontender\tconns\tround\treq_per_s\tp50_us\tp99_us\trequests\terrors\tcpu_us_per_req\tpeak_rss_kib\tmib_per_s\trss_before_kib")

	var loads []loadResult
	start := time.Now()
	for r := range o.rounds {
		for ci, conns := range o.conns {
			for _, c := range rotate(contenders, r*len(o.conns)+ci) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := measureLoad(ctx, o, c, conns)
				if err != nil {
					return fmt.Errorf("%s at %d connections: %w", c.name, conns, err)
				}
				res.round = r + 1
				loads = append(loads, res)
				fmt.Fprintf(raw, "load\t%s\t%d\t%d\t%.0f\t%d\t%d\t%d\t%d\t%.1f\t%d\t\t\n", res.contender, res.conns, res.round, res.rps,
					res.p50.Microseconds(), res.p99.Microseconds(), res.requests, res.errors,
					float64(res.cpuPerReq.Nanoseconds())/1e3, res.peakRSS>>10)
				fmt.Printf("round %d  c%-4d %-8s %9.0f req/s  p50 %-9s p99 %-9s cpu %6.1f µs/req  peak RSS %5.1f MiB%s\n",
					res.round, conns, c.name, res.rps, fmtDur(res.p50), fmtDur(res.p99),
					float64(res.cpuPerReq.Nanoseconds())/1e3, mib(res.peakRSS), errNote(res.errors))
			}
		}
	}
	var streams []streamResult
	for r := range o.streamRds {
		for _, c := range rotate(contenders, r) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res, err := measureStream(ctx, c, o.bigBytes)
			if err != nil {
				return fmt.Errorf("streaming through %s: %w", c.name, err)
			}
			res.round = r + 1
			streams = append(streams, res)
			fmt.Fprintf(raw, "stream\t%s\t1\t%d\t\t\t\t\t\t\t%d\t%.1f\t%d\n", res.contender, res.round, res.peakRSS>>10, res.mibps, res.rssBefore>>10)
			fmt.Printf("round %d  stream %-8s %7.0f MiB/s  RSS before %5.1f MiB, peak %5.1f MiB%s\n", res.round, c.name, res.mibps,
				mib(res.rssBefore), mib(res.peakRSS), statusNote(res, o.bigBytes))
		}
	}
	elapsed := time.Since(start).Round(time.Second)
	report := machine + fmt.Sprintf("load: %d round(s) x %s per level; stream: %d MiB x %d round(s); measured in %s\n\n",
		o.rounds, o.duration, o.bigBytes>>20, o.streamRds, elapsed) + summarize(contenders, o, loads, streams)
	fmt.Println()
	fmt.Print(report)
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s/results.md, raw: %s/raw.tsv, contenders' stderr: %s/*.log\n", o.out, o.out, o.out)
	return nil
}

func names(cs []*contender) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.name+" "+c.base)
	}
	return strings.Join(s, ", ")
}

// rotate returns cs starting at index k mod len(cs): the order of contenders changes from one
// level and round to the next, so drift on the machine does not favour one of them.
func rotate(cs []*contender, k int) []*contender {
	k %= len(cs)
	return append(append([]*contender(nil), cs[k:]...), cs[:k]...)
}

// startChild runs `benchproxy <sub> args…`, its standard error going to logDir/<sub>.log, and
// waits for its "listening URL [header_bytes=N]" line.
func startChild(self, logDir, sub string, args ...string) (*contender, int, error) {
	cmd := exec.Command(self, append([]string{sub, "-watch-stdin"}, args...)...)
	logf, err := os.Create(filepath.Join(logDir, sub+".log"))
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting %s: %w", sub, err)
	}
	c := &contender{name: sub, pid: cmd.Process.Pid, cmd: cmd, stdin: stdin}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		if !ok || len(f) < 2 || f[0] != "listening" {
			c.stop()
			return nil, 0, fmt.Errorf("%s did not start (said %q)", sub, line)
		}
		c.base = f[1]
		n := 0
		for _, kv := range f[2:] {
			if v, ok := strings.CutPrefix(kv, "header_bytes="); ok {
				n, _ = strconv.Atoi(v)
			}
		}
		return c, n, nil
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, 0, fmt.Errorf("%s did not start within 2 minutes", sub)
	}
}

func (c *contender) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// startNginx runs nginx as a reverse proxy to upstream with its own prefix, config and temp
// paths under dir (nothing under /etc or /var), two workers, keep-alive to the upstream.
func startNginx(bin, dir, upstream, authz string) (*contender, error) {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// Workers run as nobody when nginx starts as root: let them into the prefix.
	for p := dir; p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	upHost := strings.TrimPrefix(upstream, "http://")
	conf := fmt.Sprintf(`# written by scripts/bench-proxy
worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream up {
        server %[2]s;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:%[3]d;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "%[4]s";
            # stream large bodies through memory buffers, never to a temp file
            proxy_max_temp_file_size 0;
        }
    }
}
`, dir, upHost, port, authz)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "logs", "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	c := &contender{name: "nginx", base: fmt.Sprintf("http://127.0.0.1:%d", port), pid: cmd.Process.Pid, cmd: cmd, workers: true}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			c.stop()
			log, _ := os.ReadFile(filepath.Join(dir, "logs", "error.log"))
			return nil, fmt.Errorf("nginx did not listen on port %d: %s", port, strings.TrimSpace(string(log)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// measureLoad runs wrk against c and reads the contender's CPU time and peak RSS around it.
func measureLoad(ctx context.Context, o runOptions, c *contender, conns int) (loadResult, error) {
	pids := c.pids()
	resetPeak(pids)
	cpu0 := cpuTime(pids)
	w, err := runWrk(ctx, o.wrk, c.base+benchPrefix+"1k", conns, o.duration)
	if err != nil {
		return loadResult{}, err
	}
	cpu1 := cpuTime(c.pids())
	res := loadResult{contender: c.name, conns: conns, rps: w.rps, p50: w.p50, p99: w.p99, requests: w.requests,
		errors: w.errors, peakRSS: peakRSS(c.pids())}
	if w.requests > 0 {
		res.cpuPerReq = (cpu1 - cpu0) / time.Duration(w.requests)
	}
	return res, nil
}

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	errors   int64
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in`)
	reLatency  = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk runs `wrk -t2 -cN -dD --latency url` (one thread for one connection).
func runWrk(ctx context.Context, wrk, url string, conns int, d time.Duration) (wrkResult, error) {
	threads := min(2, conns)
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", url}
	out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	s := string(out)
	var r wrkResult
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("wrk output has no Requests/sec:\n%s", s)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range reLatency.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if m := reSockErrs.FindStringSubmatch(s); m != nil {
		for _, f := range m[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			r.errors += n
		}
	}
	return r, nil
}

// measureStream downloads the big body through c with curl.
func measureStream(ctx context.Context, c *contender, size int64) (streamResult, error) {
	pids := c.pids()
	before := currentRSS(pids)
	resetPeak(pids)
	out, err := exec.CommandContext(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download} %{size_download} %{http_code}",
		c.base+benchPrefix+"big").CombinedOutput()
	if err != nil {
		return streamResult{}, fmt.Errorf("curl: %w: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return streamResult{}, fmt.Errorf("curl said %q", out)
	}
	speed, _ := strconv.ParseFloat(f[0], 64)
	n, _ := strconv.ParseInt(f[1], 10, 64)
	status, _ := strconv.Atoi(f[2])
	return streamResult{contender: c.name, mibps: speed / (1 << 20), bytes: n, status: status, rssBefore: before,
		peakRSS: peakRSS(c.pids())}, nil
}

// childrenOf lists the processes whose parent is pid (nginx's workers).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(p); err == nil && st.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

type procStat struct {
	ppid         int
	utime, stime int64 // clock ticks
}

// readStat parses /proc/pid/stat (fields after the parenthesised command name).
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return procStat{}, errors.New("bad stat")
	}
	var st procStat
	st.ppid, _ = strconv.Atoi(f[1])
	st.utime, _ = strconv.ParseInt(f[11], 10, 64)
	st.stime, _ = strconv.ParseInt(f[12], 10, 64)
	return st, nil
}

// clockTick is USER_HZ, 100 on Linux.
const clockTick = 10 * time.Millisecond

func cpuTime(pids []int) time.Duration {
	var t time.Duration
	for _, p := range pids {
		if st, err := readStat(p); err == nil {
			t += time.Duration(st.utime+st.stime) * clockTick
		}
	}
	return t
}

// resetPeak resets VmHWM (echo 5 > /proc/pid/clear_refs), so the next reading is the peak of
// the coming run only.
func resetPeak(pids []int) {
	for _, p := range pids {
		_ = os.WriteFile("/proc/"+strconv.Itoa(p)+"/clear_refs", []byte("5"), 0)
	}
}

func statusKiB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func peakRSS(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += statusKiB(p, "VmHWM") << 10
	}
	return n
}

func currentRSS(pids []int) int64 {
	var n int64
	for _, p := range pids {
		n += statusKiB(p, "VmRSS") << 10
	}
	return n
}

// describeMachine says what ran the benchmark.
func describeMachine(o runOptions) string {
	var b strings.Builder
	model := "unknown"
	if ci, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(ci), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := statusLine("/proc/meminfo", "MemTotal")
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	gover, _ := exec.Command("go", "version").Output()
	wrkv, _ := exec.Command(o.wrk, "-v").CombinedOutput()
	ngv := []byte("not installed")
	if _, err := os.Stat(o.nginx); err == nil {
		ngv, _ = exec.Command(o.nginx, "-v").CombinedOutput()
	}
	fmt.Fprintf(&b, "machine: %d CPUs (nproc), %s, RAM %s, kernel %s\n", nprocs(), model, mem, strings.TrimSpace(string(kernel)))
	fmt.Fprintf(&b, "go: %s; wrk: %s; nginx: %s\n", strings.TrimSpace(string(gover)), firstLine(string(wrkv)), strings.TrimSpace(string(ngv)))
	fmt.Fprintf(&b, "load average at start: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	return b.String()
}

func nprocs() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func statusLine(file, field string) string {
	b, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
