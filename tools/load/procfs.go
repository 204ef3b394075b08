//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux fixes the
// user-visible clock tick (USER_HZ) at 100 on every architecture Go runs on;
// see proc(5) and sysconf(_SC_CLK_TCK).
const userHZ = 100

// procStat reads a process's parent and its CPU time (utime+stime of all its
// threads, in clock ticks) from /proc/PID/stat.
func procStat(pid int) (ppid int, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself, so split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3]. ppid is 4, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	var sum int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: cpu time: %w", pid, err)
		}
		sum += n
	}
	return ppid, sum, nil
}

// cpuTicks sums the CPU time of pids.
func cpuTicks(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		_, t, err := procStat(pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// peakRSS sums VmHWM (the peak resident set since the process started) of
// pids, in bytes.
func peakRSS(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		n, err := vmHWM(pid)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		// "VmHWM:	   12345 kB"
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: odd VmHWM line %q", pid, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmHWM: %w", pid, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// withChildren returns pid and its direct children (nginx's workers), found by
// their parent in /proc/*/stat, which works without CONFIG_PROC_CHILDREN.
func withChildren(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := []int{pid}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		ppid, _, err := procStat(child)
		if err != nil {
			continue // gone meanwhile, or not ours to read
		}
		if ppid == pid {
			pids = append(pids, child)
		}
	}
	return pids, nil
}

// machineTicks reads the whole machine's busy and total CPU time, in clock
// ticks, from the first line of /proc/stat.
func machineTicks() (busy, total int64, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0, fmt.Errorf("/proc/stat: empty: %v", sc.Err())
	}
	// "cpu  user nice system idle iowait irq softirq steal guest guest_nice";
	// guest time is already counted in user.
	f8 := strings.Fields(sc.Text())
	if len(f8) < 9 || f8[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: odd first line %q", sc.Text())
	}
	var v [8]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f8[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
	}
	idle := v[3] + v[4]
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return busy, busy + idle, nil
}
