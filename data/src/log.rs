//! Per-epoch metric logs: one CSV (`metrics.csv`, a header then one row per epoch and
//! phase) and the same rows as JSON lines (`metrics.jsonl`), flushed after every row
//! so a run that stops leaves a readable log.

use crate::{invalid, DataError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `metrics.csv` and `metrics.jsonl` in a directory.
#[derive(Debug)]
pub struct MetricLog {
    dir: PathBuf,
    csv: std::fs::File,
    jsonl: std::fs::File,
    columns: Option<Vec<String>>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A JSON number (non-finite values as `null`, which JSON lacks numbers for).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

impl MetricLog {
    /// Creates (or truncates) the two logs in `dir`, creating `dir` if needed.
    ///
    /// # Errors
    /// [`DataError::File`] naming the directory or file that cannot be written.
    pub fn create(dir: impl AsRef<Path>) -> Result<MetricLog> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let open = |name: &str| {
            let p = dir.join(name);
            std::fs::File::create(&p).map_err(|e| io(&p, e))
        };
        Ok(MetricLog {
            csv: open("metrics.csv")?,
            jsonl: open("metrics.jsonl")?,
            dir,
            columns: None,
        })
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One row: `epoch`, `phase` (`train`, `valid`…) and the metrics. The first row
    /// fixes the CSV's columns; a later row must have the same metric names.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for other metric names than the first row's, or a name
    /// with a comma or quote; [`DataError::File`] when writing fails.
    pub fn log(&mut self, epoch: u64, phase: &str, metrics: &[(String, f64)]) -> Result<()> {
        let names: Vec<String> = metrics.iter().map(|(n, _)| n.clone()).collect();
        if let Some(bad) = names
            .iter()
            .chain(std::iter::once(&phase.to_string()))
            .find(|n| n.contains([',', '"', '\n']))
        {
            return Err(invalid(
                "MetricLog::log",
                format!("name {bad:?} has a comma, quote or newline"),
            ));
        }
        match &self.columns {
            None => {
                let header = format!("epoch,phase,{}\n", names.join(","));
                let p = self.dir.join("metrics.csv");
                self.csv
                    .write_all(header.as_bytes())
                    .map_err(|e| io(&p, e))?;
                self.columns = Some(names.clone());
            }
            Some(cols) if *cols != names => {
                return Err(invalid(
                    "MetricLog::log",
                    format!("metrics {names:?}, but the log's columns are {cols:?}"),
                ))
            }
            Some(_) => {}
        }
        let values: Vec<String> = metrics.iter().map(|(_, v)| format!("{v}")).collect();
        let row = format!("{epoch},{phase},{}\n", values.join(","));
        let fields: Vec<String> = metrics
            .iter()
            .map(|(n, v)| format!("\"{n}\":{}", json_number(*v)))
            .collect();
        let line = format!(
            "{{\"epoch\":{epoch},\"phase\":\"{phase}\"{}{}}}\n",
            if fields.is_empty() { "" } else { "," },
            fields.join(",")
        );
        let (pc, pj) = (self.dir.join("metrics.csv"), self.dir.join("metrics.jsonl"));
        self.csv.write_all(row.as_bytes()).map_err(|e| io(&pc, e))?;
        self.jsonl
            .write_all(line.as_bytes())
            .map_err(|e| io(&pj, e))?;
        self.csv.flush().map_err(|e| io(&pc, e))?;
        self.jsonl.flush().map_err(|e| io(&pj, e))
    }
}
