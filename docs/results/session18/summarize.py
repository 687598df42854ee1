import re,sys,glob,os
d=sys.argv[1]
def parse(f):
    t=open(f).read()
    res={}
    for dt in ['f32','bf16','f16']:
        m=re.search(r'^\| %s \| \d+ MB \| ([\d.]+) / ([\d.]+) GB/s \| ([\d.]+) ms \| ([\d.]+) ms \(median of \d+\) \| ([\d.]+)x'%dt,t,re.M)
        if m: res[dt]={'step':float(m.group(4)),'sratio':float(m.group(5)),'floor':float(m.group(3))}
    sec=t.split('Verification cost')[1].split('State-matched')[0] if 'Verification cost' in t else ''
    hdr=re.search(r'^\| n \(rows\) \|(.*)$',sec,re.M)
    cols=[c.strip() for c in hdr.group(1).split('|')] if hdr else []
    rows={}
    for m in re.finditer(r'^\| (\d+) \((\d+)\) \|(.*)$',sec,re.M):
        cells=[c.strip() for c in m.group(3).split('|')]
        rows[int(m.group(2))]=cells
    return res,cols,rows
for th in ['1','2']:
    files=sorted(glob.glob(os.path.join(d,'dec%s-*.txt'%th)))
    if not files: continue
    print('== %s thread(s)'%th)
    data={os.path.basename(f)[5:-4]:parse(f) for f in files}
    names=sorted(data)
    for n in names:
        res,cols,rows=data[n]
        print(n,'step', {k:(v['step'],v['sratio']) for k,v in res.items()})
    allrows=sorted(set(r for n in names for r in data[n][2]))
    for r in allrows:
        line='%4d rows '%r
        for n in names:
            cells=data[n][2].get(r)
            if cells: line+=' %s %s %s(%s)'%(n, cells[0].replace(' ms',''), '', cells[2])
        print(line)
