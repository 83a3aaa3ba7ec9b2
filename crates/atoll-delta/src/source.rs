//! Random access to the old file without holding it in memory.

use std::fs::File;
use std::io;

/// Something bytes can be read from at any position: a slice in memory, or a
/// file (read with `pread`, so a 100 MB old package costs no memory to apply a
/// patch against).
pub trait ReadAt {
    /// Total size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from position `pos`; fails if the source ends first.
    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for [u8] {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }

    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(pos).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            )),
        }
    }
}

impl ReadAt for Vec<u8> {
    fn size(&self) -> io::Result<u64> {
        self.as_slice().size()
    }

    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.as_slice().read_exact_at(pos, buf)
    }
}

impl ReadAt for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    #[cfg(unix)]
    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, pos)
    }

    #[cfg(windows)]
    fn read_exact_at(&self, mut pos: u64, mut buf: &mut [u8]) -> io::Result<()> {
        use std::os::windows::fs::FileExt;
        while !buf.is_empty() {
            match self.seek_read(buf, pos)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "read past the end",
                    ))
                }
                n => {
                    buf = &mut std::mem::take(&mut buf)[n..];
                    pos += n as u64;
                }
            }
        }
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }

    fn read_exact_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_exact_at(pos, buf)
    }
}

/// A `Read` over a range of a [`ReadAt`].
pub(crate) struct RangeReader<'a, S: ReadAt + ?Sized> {
    pub src: &'a S,
    pub pos: u64,
    pub end: u64,
}

impl<S: ReadAt + ?Sized> io::Read for RangeReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        self.src.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}
