//! Audio datasets: a folder of WAV files labelled by sub-folder name
//! (`root/yes/*.wav`, `root/no/*.wav`, as torchvision's `ImageFolder`), and a CSV
//! manifest of `path,label[,start,end]` lines. Each sample has one field, `audio`:
//! f32 `[channels, frames]` in `[-1, 1]` ([`crate::read_wav`]); variable lengths are
//! batched with [`crate::PadCollate`].

use crate::dataset::{Dataset, Sample};
use crate::wav::{probe_wav, read_wav};
use crate::{DataError, Result};
use onde_ir::Array;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A grouping key from a file's path (a speaker id in the file name…).
pub type GroupFn = Arc<dyn Fn(&Path) -> Option<String> + Send + Sync>;

/// A span `[start, end)` in seconds, or the whole file.
type Span = Option<(f64, f64)>;

/// One audio example on disk: its file, label, and an optional span in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The WAV file.
    pub path: PathBuf,
    /// Class index.
    pub label: i64,
    /// Span `[start, end)` in seconds (`None`: the whole file).
    pub span: Option<(f64, f64)>,
}

/// WAV clips on disk (from a folder tree or a manifest), read when asked for.
#[derive(Clone)]
pub struct AudioFiles {
    clips: Vec<Clip>,
    classes: Vec<String>,
    rate: Option<u32>,
    group: Option<GroupFn>,
    skipped: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for AudioFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFiles")
            .field("clips", &self.clips.len())
            .field("classes", &self.classes)
            .field("rate", &self.rate)
            .finish()
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| file_error(dir, e))?;
    let mut v = Vec::new();
    for e in rd {
        v.push(e.map_err(|e| file_error(dir, e))?.path());
    }
    v.sort();
    Ok(v)
}

fn wav_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            wav_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")) {
            out.push(p);
        }
    }
    Ok(())
}

impl AudioFiles {
    /// Clips and class names, no rate expected, no groups, nothing skipped.
    fn of(clips: Vec<Clip>, classes: Vec<String>) -> AudioFiles {
        AudioFiles {
            clips,
            classes,
            rate: None,
            group: None,
            skipped: Vec::new(),
        }
    }

    /// The `.wav` files under each sub-folder of `root` (searched recursively), the
    /// sub-folder's name being the class; classes sorted by name get labels 0, 1, ….
    ///
    /// # Errors
    /// [`DataError::File`] when `root` cannot be read or holds no class folder.
    pub fn folder(root: impl AsRef<Path>) -> Result<AudioFiles> {
        let root = root.as_ref();
        let mut classes = Vec::new();
        let mut clips = Vec::new();
        for p in sorted_entries(root)? {
            if !p.is_dir() {
                continue;
            }
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let label = classes.len() as i64;
            classes.push(name);
            let mut files = Vec::new();
            wav_files(&p, &mut files)?;
            clips.extend(files.into_iter().map(|path| Clip {
                path,
                label,
                span: None,
            }));
        }
        if classes.is_empty() {
            return Err(file_error(
                root,
                "no class sub-folders (expected root/<class>/*.wav)",
            ));
        }
        Ok(AudioFiles::of(clips, classes))
    }

    /// The clips listed in the CSV `manifest`: one `path,label[,start,end]` per line
    /// (a first line starting with `path` is a header; paths relative to the
    /// manifest's folder; `label` a class name; `start`/`end` in seconds; no quoting).
    /// Classes sorted by name get labels 0, 1, ….
    ///
    /// # Errors
    /// [`DataError::File`] naming the manifest and line of a malformed line.
    pub fn manifest(manifest: impl AsRef<Path>) -> Result<AudioFiles> {
        let manifest = manifest.as_ref();
        let text = std::fs::read_to_string(manifest).map_err(|e| file_error(manifest, e))?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        // (path, class name, span) per line.
        let mut rows: Vec<(PathBuf, String, Span)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = |m: String| DataError::File {
                path: format!("{}:{}", manifest.display(), n + 1),
                message: m,
            };
            if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("path")) {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let span = match cols.len() {
                2 => None,
                4 => {
                    let num = |s: &str, what: &str| {
                        s.parse::<f64>()
                            .map_err(|_| at(format!("{what} `{s}` is not a number of seconds")))
                    };
                    let (s, e) = (num(cols[2], "start")?, num(cols[3], "end")?);
                    if !(0.0 <= s && s < e) {
                        return Err(at(format!("span [{s}, {e}) is empty or negative")));
                    }
                    Some((s, e))
                }
                k => {
                    return Err(at(format!(
                        "{k} columns; expected path,label or path,label,start,end"
                    )))
                }
            };
            if cols[0].is_empty() || cols[1].is_empty() {
                return Err(at("empty path or label".into()));
            }
            rows.push((base.join(cols[0]), cols[1].to_string(), span));
        }
        let mut classes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        classes.sort();
        classes.dedup();
        let clips = rows
            .into_iter()
            .map(|(path, c, span)| Clip {
                path,
                label: classes.binary_search(&c).unwrap_or(0) as i64,
                span,
            })
            .collect();
        Ok(AudioFiles::of(clips, classes))
    }

    /// Every file must have this sampling rate (an error naming the file otherwise;
    /// resample offline or with the signal crate).
    pub fn expect_rate(mut self, rate: u32) -> AudioFiles {
        self.rate = Some(rate);
        self
    }

    /// A grouping key per file for [`crate::group_split`] (e.g. the speaker id before
    /// the first `_` of the file name: [`AudioFiles::group_by_name_prefix`]).
    pub fn with_groups(
        mut self,
        f: impl Fn(&Path) -> Option<String> + Send + Sync + 'static,
    ) -> AudioFiles {
        self.group = Some(Arc::new(f));
        self
    }

    /// Groups by the file name's part before `sep` (`spk07_0003.wav` → `spk07`).
    pub fn group_by_name_prefix(self, sep: char) -> AudioFiles {
        self.with_groups(move |p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            Some(name.split(sep).next().unwrap_or(&name).to_string())
        })
    }

    /// Drops the clips whose file cannot be read (not WAV, truncated, another rate
    /// than [`AudioFiles::expect_rate`]'s, a span past its end), each with a warning on
    /// stderr naming the file and the reason; [`AudioFiles::skipped`] lists them. Reads
    /// each file's header and last frame only. Without it, such a clip is an error
    /// naming the file when the loader reaches it.
    pub fn skip_unreadable(mut self) -> AudioFiles {
        let rate = self.rate;
        let mut kept = Vec::with_capacity(self.clips.len());
        for clip in std::mem::take(&mut self.clips) {
            let check = probe_wav(&clip.path).and_then(|info| {
                if let Some(r) = rate.filter(|&r| r != info.rate) {
                    return Err(file_error(
                        &clip.path,
                        format!("sampled at {} Hz, the dataset expects {r} Hz", info.rate),
                    ));
                }
                // The span as `get` cuts it: empty after rounding is unreadable.
                match clip.span {
                    Some((s, e)) => {
                        let rate = f64::from(info.rate);
                        let lo = ((s * rate).round() as usize).min(info.frames);
                        let hi = ((e * rate).round() as usize).min(info.frames);
                        if lo >= hi {
                            Err(file_error(
                                &clip.path,
                                format!(
                                    "span [{s}, {e}) s holds no sample ({} frames at {} Hz)",
                                    info.frames, info.rate
                                ),
                            ))
                        } else {
                            Ok(())
                        }
                    }
                    None => Ok(()),
                }
            });
            match check {
                Ok(()) => kept.push(clip),
                Err(e) => {
                    // The message without the path (the warning names it).
                    let reason = if let DataError::File { message, .. } = &e {
                        message.clone()
                    } else {
                        e.to_string()
                    };
                    eprintln!("warning: skipping {}: {reason}", clip.path.display());
                    self.skipped.push((clip.path, reason));
                }
            }
        }
        self.clips = kept;
        self
    }

    /// The files [`AudioFiles::skip_unreadable`] dropped, with the reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }

    /// Class names, by label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The clips, in dataset order.
    pub fn clips(&self) -> &[Clip] {
        &self.clips
    }
}

impl Dataset for AudioFiles {
    fn len(&self) -> usize {
        self.clips.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let clip = self.clips.get(index).ok_or(DataError::Index {
            index,
            len: self.clips.len(),
        })?;
        let wav = read_wav(&clip.path)?;
        if let Some(r) = self.rate.filter(|&r| r != wav.rate) {
            return Err(file_error(
                &clip.path,
                format!("sampled at {} Hz, the dataset expects {r} Hz", wav.rate),
            ));
        }
        let audio = match clip.span {
            None => wav.samples,
            Some((s, e)) => {
                let rate = f64::from(wav.rate);
                let (c, t) = (wav.channels(), wav.frames());
                let a = ((s * rate).round() as usize).min(t);
                let b = ((e * rate).round() as usize).min(t);
                if a >= b {
                    return Err(file_error(
                        &clip.path,
                        format!(
                            "span [{s}, {e}) s is past the end ({t} frames at {} Hz)",
                            wav.rate
                        ),
                    ));
                }
                let data = wav.samples.as_f32().unwrap_or(&[]);
                let mut v = Vec::with_capacity(c * (b - a));
                for ch in 0..c {
                    v.extend_from_slice(&data[ch * t + a..ch * t + b]);
                }
                Array::f32([c, b - a], v).map_err(|e| file_error(&clip.path, e))?
            }
        };
        Ok(Sample::new("audio", audio, clip.label))
    }

    fn group(&self, index: usize) -> Option<String> {
        let f = self.group.as_ref()?;
        f(&self.clips.get(index)?.path)
    }
}
