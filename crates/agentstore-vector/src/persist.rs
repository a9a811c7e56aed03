//! Snapshot format, version 1. All integers little-endian.
//!
//! ```text
//! magic "AGSVECIX" | version u32 = 1
//! header: dim u32, metric u8 (0 cosine, 1 dot, 2 l2), quantization u8 (0 none, 1 i8),
//!         reserved u16 = 0, m u32, ef_construction u32, slots u64, removed u64,
//!         entry_slot u32 (u32::MAX = none), entry_level u32, qmax f32, meta_len u64
//! sections: meta [u8; meta_len] | keys [u64; slots] | deleted [u8; slots] | levels [u8; slots]
//!         | vectors [f32; slots*dim] | level-0 links [u32; slots*(1+2m)]
//!         | upper links [u32; sum(levels)*(1+m)] (slot order)
//! trailer: CRC-32 (IEEE) of every byte before it
//! ```
//!
//! Loading checks the file length against the header before allocating (a damaged length
//! field cannot trigger a huge allocation), reads whole sections in 64 KiB chunks, verifies
//! the CRC, then validates the structure (link ids in range, counts within capacity, levels
//! consistent, finite vectors, unique live keys), so a file that passes is a usable index.
//! The int8 codes are not stored: they are recomputed from the vectors and `qmax`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{
    IndexError, IndexParams, MAX_LEVEL, MAX_SLOTS, Metric, NONE_SLOT, Quantization, VectorIndex,
};

const MAGIC: &[u8; 8] = b"AGSVECIX";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 8 + 4 + 4 + 1 + 1 + 2 + 4 + 4 + 8 + 8 + 4 + 4 + 4 + 8;
const CHUNK: usize = 64 * 1024;

struct HashWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> HashWriter<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.crc.update(b);
        self.inner.write_all(b)
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(msg: impl Into<String>) -> IndexError {
    IndexError::Corrupt(msg.into())
}

/// Writes `items` as little-endian bytes, `CHUNK` bytes at a time.
fn put_all<W: Write, T: Copy, const N: usize>(
    w: &mut HashWriter<W>,
    items: impl Iterator<Item = T>,
    to_le: impl Fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(CHUNK + N);
    for x in items {
        buf.extend_from_slice(&to_le(x));
        if buf.len() >= CHUNK {
            w.put(&buf)?;
            buf.clear();
        }
    }
    w.put(&buf)
}

pub(crate) fn save(ix: &VectorIndex, path: &Path, meta: &[u8]) -> Result<(), IndexError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let write = || -> std::io::Result<()> {
        let file = File::create(&tmp)?;
        let mut w = HashWriter {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
        };
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&(ix.dim as u32).to_le_bytes())?;
        let metric: u8 = match ix.metric {
            Metric::Cosine => 0,
            Metric::Dot => 1,
            Metric::L2 => 2,
        };
        let quant: u8 = match ix.params.quantization {
            Quantization::None => 0,
            Quantization::I8 => 1,
        };
        w.put(&[metric, quant, 0, 0])?;
        w.put(&(ix.params.m as u32).to_le_bytes())?;
        w.put(&(ix.params.ef_construction as u32).to_le_bytes())?;
        w.put(&(ix.slots() as u64).to_le_bytes())?;
        w.put(&(ix.n_removed as u64).to_le_bytes())?;
        let (es, el) = ix.entry.map_or((NONE_SLOT, 0), |(s, l)| (s, l as u32));
        w.put(&es.to_le_bytes())?;
        w.put(&el.to_le_bytes())?;
        w.put(&ix.qmax.to_le_bytes())?;
        w.put(&(meta.len() as u64).to_le_bytes())?;
        w.put(meta)?;
        put_all(&mut w, ix.keys.iter().copied(), u64::to_le_bytes)?;
        put_all(&mut w, ix.deleted.iter().map(|&d| u8::from(d)), |b| [b])?;
        w.put(&ix.levels)?;
        put_all(&mut w, ix.data.iter().copied(), f32::to_le_bytes)?;
        let load = |a: &AtomicU32| a.load(Ordering::Relaxed);
        put_all(&mut w, ix.link0.iter().map(load), u32::to_le_bytes)?;
        put_all(
            &mut w,
            ix.upper.iter().flatten().map(load),
            u32::to_le_bytes,
        )?;
        let crc = w.crc.clone().finalize();
        w.inner.write_all(&crc.to_le_bytes())?;
        let file = w.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

struct HashReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> HashReader<R> {
    fn take(&mut self, buf: &mut [u8]) -> Result<(), IndexError> {
        self.inner
            .read_exact(buf)
            .map_err(|e| corrupt(format!("truncated: {e}")))?;
        self.crc.update(buf);
        Ok(())
    }
    fn u8(&mut self) -> Result<u8, IndexError> {
        let mut b = [0u8; 1];
        self.take(&mut b)?;
        Ok(b[0])
    }
    fn u32(&mut self) -> Result<u32, IndexError> {
        let mut b = [0u8; 4];
        self.take(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, IndexError> {
        let mut b = [0u8; 8];
        self.take(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `count` items of `N` bytes each.
    fn many<T, const N: usize>(
        &mut self,
        count: usize,
        from_le: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, IndexError> {
        let mut out = Vec::with_capacity(count);
        let mut buf = vec![0u8; CHUNK / N * N];
        let mut left = count;
        while left > 0 {
            let n = left.min(buf.len() / N);
            let b = &mut buf[..n * N];
            self.take(b)?;
            out.extend(
                b.chunks_exact(N)
                    .map(|c| from_le(c.try_into().expect("chunk of N bytes"))),
            );
            left -= n;
        }
        Ok(out)
    }
}

pub(crate) fn load(path: &Path) -> Result<(VectorIndex, Vec<u8>), IndexError> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut r = HashReader {
        inner: BufReader::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let mut magic = [0u8; 8];
    r.take(&mut magic)?;
    if &magic != MAGIC {
        return Err(corrupt("not an agentstore vector index (bad magic)"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(corrupt(format!("unsupported format version {version}")));
    }
    let dim = r.u32()? as usize;
    let metric = match r.u8()? {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        2 => Metric::L2,
        x => return Err(corrupt(format!("unknown metric {x}"))),
    };
    let quantization = match r.u8()? {
        0 => Quantization::None,
        1 => Quantization::I8,
        x => return Err(corrupt(format!("unknown quantization {x}"))),
    };
    if r.u8()? != 0 || r.u8()? != 0 {
        return Err(corrupt("reserved header bytes are not zero"));
    }
    let m = r.u32()? as usize;
    let efc = r.u32()? as usize;
    let slots = r.u64()?;
    let removed = r.u64()?;
    let entry_slot = r.u32()?;
    let entry_level = r.u32()? as usize;
    let qmax = f32::from_le_bytes(r.u32()?.to_le_bytes());
    let meta_len = r.u64()?;
    if !(2..=128).contains(&m) || efc < m {
        return Err(corrupt("bad graph parameters"));
    }
    if slots > MAX_SLOTS as u64 || removed > slots {
        return Err(corrupt("bad slot counts"));
    }
    if !qmax.is_finite() || qmax < 0.0 {
        return Err(corrupt("bad quantisation range"));
    }
    // Everything but the upper links has a size fixed by the header.
    let per_slot = 8u64 + 1 + 1 + 4 * dim as u64 + 4 * (1 + 2 * m as u64);
    let fixed = slots
        .checked_mul(per_slot)
        .and_then(|x| x.checked_add(HEADER_LEN + 4))
        .and_then(|x| x.checked_add(meta_len))
        .filter(|&x| x <= file_len)
        .ok_or_else(|| corrupt("file is shorter than its header says"))?;
    let slots = slots as usize;
    let meta = r.many(meta_len as usize, |b: [u8; 1]| b[0])?;
    let keys = r.many(slots, u64::from_le_bytes)?;
    let deleted_raw = r.many(slots, |b: [u8; 1]| b[0])?;
    let levels = r.many(slots, |b: [u8; 1]| b[0])?;
    let upper_len: u64 = levels.iter().map(|&l| u64::from(l) * (1 + m as u64)).sum();
    if fixed.checked_add(upper_len.saturating_mul(4)) != Some(file_len) {
        return Err(corrupt("file length does not match its header"));
    }
    let data = r.many(slots * dim, f32::from_le_bytes)?;
    let link0 = r.many(slots * (1 + 2 * m), u32::from_le_bytes)?;
    let upper_flat = r.many(upper_len as usize, u32::from_le_bytes)?;
    let computed = r.crc.clone().finalize();
    let mut tail = [0u8; 4];
    r.inner
        .read_exact(&mut tail)
        .map_err(|e| corrupt(format!("truncated: {e}")))?;
    if u32::from_le_bytes(tail) != computed {
        return Err(corrupt("checksum mismatch"));
    }

    // Structure checks: a file that passes them is a usable index.
    let mut deleted = Vec::with_capacity(slots);
    for &d in &deleted_raw {
        match d {
            0 => deleted.push(false),
            1 => deleted.push(true),
            _ => return Err(corrupt("bad tombstone flag")),
        }
    }
    if deleted.iter().filter(|&&d| d).count() as u64 != removed {
        return Err(corrupt("tombstone count mismatch"));
    }
    if levels.iter().any(|&l| l as usize > MAX_LEVEL) {
        return Err(corrupt("node level out of range"));
    }
    let entry = if entry_slot == NONE_SLOT {
        if slots != 0 {
            return Err(corrupt("missing entry point"));
        }
        None
    } else {
        let top = levels.iter().copied().max().unwrap_or(0) as usize;
        if entry_slot as usize >= slots
            || levels[entry_slot as usize] as usize != entry_level
            || entry_level != top
        {
            return Err(corrupt("bad entry point"));
        }
        Some((entry_slot, entry_level))
    };
    if data.iter().any(|x| !x.is_finite()) {
        return Err(corrupt("non-finite vector component"));
    }
    let check_lists = |flat: &[u32], cap: usize| -> Result<(), IndexError> {
        for list in flat.chunks_exact(1 + cap) {
            let n = list[0] as usize;
            if n > cap || list[1..=n].iter().any(|&id| id as usize >= slots) {
                return Err(corrupt("bad neighbour list"));
            }
        }
        Ok(())
    };
    check_lists(&link0, 2 * m)?;
    check_lists(&upper_flat, m)?;
    // A level-l list may only name nodes that exist on level l (search indexes their lists).
    let mut lists = upper_flat.chunks_exact(1 + m);
    for &l in &levels {
        for lev in 1..=l {
            let list = lists.next().ok_or_else(|| corrupt("upper links missing"))?;
            if list[1..=list[0] as usize]
                .iter()
                .any(|&id| levels[id as usize] < lev)
            {
                return Err(corrupt("link to a node below its level"));
            }
        }
    }
    let mut map = HashMap::with_capacity(slots - removed as usize);
    for (s, &k) in keys.iter().enumerate() {
        if !deleted[s] && map.insert(k, s as u32).is_some() {
            return Err(corrupt("duplicate live key"));
        }
    }

    let params = IndexParams {
        m,
        ef_construction: efc,
        quantization,
    };
    let mut ix = VectorIndex::new(dim, metric, params);
    let mut rest = upper_flat.into_iter();
    ix.upper = levels
        .iter()
        .map(|&l| {
            (&mut rest)
                .take(l as usize * (1 + m))
                .map(AtomicU32::new)
                .collect()
        })
        .collect();
    ix.link0 = link0.into_iter().map(AtomicU32::new).collect();
    ix.data = data;
    ix.keys = keys;
    ix.deleted = deleted;
    ix.levels = levels;
    ix.map = map;
    ix.entry = entry;
    ix.n_removed = removed as usize;
    ix.qmax = qmax;
    if quantization == Quantization::I8 {
        let mut codes = Vec::with_capacity(ix.data.len());
        for s in 0..slots {
            ix.quantize(ix.vector(s as u32), &mut codes);
        }
        ix.codes = codes;
    }
    Ok((ix, meta))
}
