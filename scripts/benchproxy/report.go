package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// summarize renders the results as Markdown tables: medians over rounds, the ratios of our
// proxy to the stock proxy and nginx, and the targets.
func summarize(cs []*contender, o runOptions, loads []loadResult, streams []streamResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Load: 1 KiB responses, wrk -t2 -cN -d%s --latency (-t1 for one connection), median of %d round(s)\n\n", o.duration, o.rounds)
	b.WriteString("| conns | contender | req/s | req/s min–max | p50 | p99 | CPU µs/req | peak RSS MiB | errors |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range o.conns {
		for _, c := range cs {
			rs := pick(loads, c.name, n)
			if len(rs) == 0 {
				continue
			}
			rps := floats(rs, func(r loadResult) float64 { return r.rps })
			var errs int64
			for _, r := range rs {
				errs += r.errors
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f–%.0f | %s | %s | %.1f | %.1f | %d |\n", n, c.name, median(rps),
				slices.Min(rps), slices.Max(rps),
				fmtDur(medianDur(rs, func(r loadResult) time.Duration { return r.p50 })),
				fmtDur(medianDur(rs, func(r loadResult) time.Duration { return r.p99 })),
				median(floats(rs, func(r loadResult) float64 { return float64(r.cpuPerReq.Nanoseconds()) / 1e3 })),
				mib(slices.Max(ints(rs, func(r loadResult) int64 { return r.peakRSS }))), errs)
		}
	}
	b.WriteString("\nCPU µs/req: the contender's own processes (user+system, from /proc/PID/stat) over the run, divided by the requests wrk completed; wrk and the upstream run on the same 2 CPUs. Peak RSS: VmHWM, reset before each run (nginx: master plus workers).\n")

	hasNginx := len(pick(loads, "nginx", o.conns[0])) > 0
	fmt.Fprintf(&b, "\n### Ratios of our proxy (ratio of medians; per-round paired ratios in brackets)\n\n")
	b.WriteString("| conns | ours / stock req/s | ours / nginx req/s | ours / upstream alone req/s | p50 ours vs stock |\n|---:|---:|---:|---:|---:|\n")
	for _, n := range o.conns {
		ns := "—"
		if hasNginx {
			ns = ratioCell(loads, "ours", "nginx", n)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", n, ratioCell(loads, "ours", "stock", n), ns, ratioCell(loads, "ours", "upstream", n), p50Cell(loads, n))
	}

	if len(streams) > 0 {
		fmt.Fprintf(&b, "\n### Streaming: one %d MiB download with curl, median of %d round(s)\n\n", o.bigBytes>>20, o.streamRds)
		b.WriteString("| contender | MiB/s | MiB/s min–max | RSS before MiB | peak RSS during MiB | growth MiB |\n|---|---:|---:|---:|---:|---:|\n")
		for _, c := range cs {
			ss := pickStream(streams, c.name)
			if len(ss) == 0 {
				continue
			}
			sp := make([]float64, len(ss))
			var before, peak int64
			for i, s := range ss {
				sp[i] = s.mibps
				before = max(before, s.rssBefore)
				peak = max(peak, s.peakRSS)
			}
			fmt.Fprintf(&b, "| %s | %.0f | %.0f–%.0f | %.1f | %.1f | %+.1f |\n", c.name, median(sp), slices.Min(sp), slices.Max(sp), mib(before), mib(peak), mib(peak-before))
		}
	}

	b.WriteString("\n### Targets (issue 8)\n\n")
	for _, n := range []int{32, 128} {
		if len(pick(loads, "ours", n)) == 0 {
			continue
		}
		r := medianOf(loads, "ours", n) / medianOf(loads, "stock", n)
		fmt.Fprintf(&b, "- ours ≥ 1.25 × stock req/s at %d connections: %.2f × — %s\n", n, r, verdict(r >= 1.25))
	}
	if len(pick(loads, "ours", 1)) > 0 {
		po := medianDur(pick(loads, "ours", 1), func(r loadResult) time.Duration { return r.p50 })
		ps := medianDur(pick(loads, "stock", 1), func(r loadResult) time.Duration { return r.p50 })
		d := float64(po-ps) / float64(ps) * 100
		fmt.Fprintf(&b, "- c1 p50 within 10 %% of stock: ours %s, stock %s (%+.0f %%) — %s\n", fmtDur(po), fmtDur(ps), d, verdict(d <= 10))
	}
	if hasNginx && len(streams) > 0 {
		so, sn := medianStream(streams, "ours"), medianStream(streams, "nginx")
		var grow int64
		for _, s := range pickStream(streams, "ours") {
			grow = max(grow, s.peakRSS-s.rssBefore)
		}
		fmt.Fprintf(&b, "- streaming ≥ nginx MiB/s: ours %.0f, nginx %.0f (%.2f ×) — %s; ours' RSS grew at most %.1f MiB while streaming %d MiB — %s\n",
			so, sn, so/sn, verdict(so >= sn), mib(grow), o.bigBytes>>20, verdict(mib(grow) < 16))
	}
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func pick(rs []loadResult, name string, conns int) []loadResult {
	var out []loadResult
	for _, r := range rs {
		if r.contender == name && r.conns == conns {
			out = append(out, r)
		}
	}
	return out
}

func pickStream(ss []streamResult, name string) []streamResult {
	var out []streamResult
	for _, s := range ss {
		if s.contender == name {
			out = append(out, s)
		}
	}
	return out
}

func floats(rs []loadResult, f func(loadResult) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func ints(rs []loadResult, f func(loadResult) int64) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(rs []loadResult, f func(loadResult) time.Duration) time.Duration {
	return time.Duration(median(floats(rs, func(r loadResult) float64 { return float64(f(r)) })))
}

func medianOf(rs []loadResult, name string, conns int) float64 {
	return median(floats(pick(rs, name, conns), func(r loadResult) float64 { return r.rps }))
}

func medianStream(ss []streamResult, name string) float64 {
	var v []float64
	for _, s := range pickStream(ss, name) {
		v = append(v, s.mibps)
	}
	return median(v)
}

// ratioCell is "1.52 × [1.40–1.61]": the ratio of medians and the range of per-round ratios.
func ratioCell(rs []loadResult, a, b string, conns int) string {
	ma, mb := medianOf(rs, a, conns), medianOf(rs, b, conns)
	if mb == 0 {
		return "—"
	}
	var per []float64
	for _, ra := range pick(rs, a, conns) {
		for _, rb := range pick(rs, b, conns) {
			if ra.round == rb.round && rb.rps > 0 {
				per = append(per, ra.rps/rb.rps)
			}
		}
	}
	if len(per) < 2 {
		return fmt.Sprintf("%.2f ×", ma/mb)
	}
	return fmt.Sprintf("%.2f × [%.2f–%.2f]", ma/mb, slices.Min(per), slices.Max(per))
}

func p50Cell(rs []loadResult, conns int) string {
	po := medianDur(pick(rs, "ours", conns), func(r loadResult) time.Duration { return r.p50 })
	ps := medianDur(pick(rs, "stock", conns), func(r loadResult) time.Duration { return r.p50 })
	if ps == 0 {
		return "—"
	}
	return fmt.Sprintf("%s vs %s (%+.0f %%)", fmtDur(po), fmtDur(ps), float64(po-ps)/float64(ps)*100)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func errNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("  ERRORS %d", n)
}

func statusNote(s streamResult, want int64) string {
	if s.status == 200 && s.bytes == want {
		return ""
	}
	return fmt.Sprintf("  BAD: status %d, %d bytes", s.status, s.bytes)
}
