"""Summarises decode-bench outputs (`dec{threads}-{build}-{round}.txt`) side by side: the
decode step (median, ratio to the floor) and each verification point's wall time and ratio to
the roofline, per dtype. Usage: python3 summarize.py DIR"""
import re, sys, glob, os

def parse(f):
    t = open(f).read()
    steps = {}
    for m in re.finditer(r'^\| (f32|bf16|f16) \| \d+ MB \|.*?\| ([\d.]+) ms \(median of \d+\) \| ([\d.]+)x', t, re.M):
        steps[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    ver = {}
    if 'Verification cost' in t:
        sec = t.split('Verification cost')[1].split('State-matched')[0]
        hdr = re.search(r'^\| n \(rows\) \|(.*)$', sec, re.M)
        cols = [c.strip() for c in hdr.group(1).split('|')][:-1] if hdr else []
        for m in re.finditer(r'^\| \d+ \((\d+)\) \|(.*)$', sec, re.M):
            cells = [c.strip() for c in m.group(2).split('|')]
            for i, c in enumerate(cols):
                mm = re.match(r'(f32|bf16|f16) wall', c)
                if mm:
                    ver.setdefault(mm.group(1), {})[int(m.group(1))] = (cells[i].replace(' ms', ''), cells[i + 2])
    return steps, ver

d = sys.argv[1]
for th in ['1', '2']:
    files = sorted(glob.glob(os.path.join(d, 'dec%s-*.txt' % th)))
    if not files:
        continue
    data = {os.path.basename(f)[5:-4]: parse(f) for f in files}
    names = sorted(data)
    dts = [dt for dt in ['f32', 'bf16', 'f16'] if any(dt in data[n][1] for n in names)]
    print('== %s thread(s)' % th)
    for dt in dts:
        print('%s decode step (median, ratio): ' % dt + '  '.join('%s %s (%sx)' % (n, *data[n][0].get(dt, ('-', '-'))) for n in names))
        rows = sorted(set(r for n in names for r in data[n][1].get(dt, {})))
        for r in rows:
            print('  %4d rows  ' % r + '  '.join('%s %s (%s)' % (n, *data[n][1][dt].get(r, ('-', '-'))) for n in names))
