//! Checkpoints as safetensors files: state dicts (name → array) saved and loaded with
//! PyTorch-compatible names, so `safetensors.torch.save_file(model.state_dict(), f)`
//! loads into an onde model and back.
//!
//! Supported dtypes: f32, f64, i64, bool (onde's); loading a PyTorch file with another
//! dtype (f16, bf16, i32…) is a typed error naming the tensor. A truncated or corrupted
//! file is a typed error from the safetensors parser, never a panic.

use crate::builder::GraphBuilder;
use crate::error::{Error, Result};
use onde_ir::{Array, Data};
use safetensors::tensor::{Dtype, TensorView};
use std::path::Path;

fn ck(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn bytes_of(a: &Array) -> (Dtype, Vec<u8>) {
    match a.data() {
        Data::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Data::Bool(v) => (Dtype::BOOL, v.iter().map(|&b| u8::from(b)).collect()),
    }
}

/// Serialises a state dict to safetensors bytes.
pub fn to_bytes(dict: &[(String, Array)]) -> Result<Vec<u8>> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = dict
        .iter()
        .map(|(n, a)| {
            let (d, b) = bytes_of(a);
            (n.clone(), d, a.shape().dims().to_vec(), b)
        })
        .collect();
    let mut views = Vec::with_capacity(raw.len());
    for (n, d, shape, b) in &raw {
        let v = TensorView::new(*d, shape.clone(), b).map_err(|e| Error::StateDict {
            name: n.clone(),
            reason: e.to_string(),
        })?;
        views.push((n.clone(), v));
    }
    safetensors::serialize(views, None).map_err(|e| Error::Checkpoint {
        path: "<memory>".into(),
        reason: e.to_string(),
    })
}

/// Parses safetensors bytes into a state dict (in file order of names, sorted).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<(String, Array)>> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| ck(path, e.to_string()))?;
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        let v = st.tensor(&n).map_err(|e| ck(path, format!("{n:?}: {e}")))?;
        let shape = v.shape().to_vec();
        let d = v.data();
        // safetensors' `Dtype` is an external, growing enum: the catch-all arm names
        // the unsupported dtype.
        #[allow(clippy::wildcard_enum_match_arm)]
        let data = match v.dtype() {
            Dtype::F32 => Data::F32(
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F64 => Data::F64(
                d.chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            Dtype::I64 => Data::I64(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            Dtype::BOOL => Data::Bool(d.iter().map(|&b| b != 0).collect()),
            other => {
                return Err(ck(
                    path,
                    format!("{n:?} has dtype {other:?}; onde reads F32, F64, I64 and BOOL"),
                ))
            }
        };
        let a = Array::new(shape, data).map_err(|e| ck(path, format!("{n:?}: {e}")))?;
        out.push((n, a));
    }
    Ok(out)
}

/// Writes a state dict to a safetensors file.
pub fn save(path: impl AsRef<Path>, dict: &[(String, Array)]) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(dict)?;
    std::fs::write(path, bytes).map_err(|e| ck(path, e.to_string()))
}

/// Reads a state dict from a safetensors file.
pub fn load(path: impl AsRef<Path>) -> Result<Vec<(String, Array)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| ck(path, e.to_string()))?;
    from_bytes(&bytes, path)
}

impl GraphBuilder {
    /// The state dict of the builder: every parameter and buffer with its current value.
    pub fn state_dict(&self) -> Vec<(String, Array)> {
        self.parameter_values()
    }

    /// Sets parameters and buffers from a state dict (e.g. weights exported from
    /// PyTorch). Every parameter and buffer must be present with its dtype and shape;
    /// with `strict`, names that are not parameters or buffers are errors too.
    pub fn load_state_dict(&self, dict: &[(String, Array)], strict: bool) -> Result<()> {
        let have = self.parameter_values();
        for (n, _) in &have {
            if !dict.iter().any(|(k, _)| k == n) {
                return Err(Error::StateDict {
                    name: n.clone(),
                    reason: "missing from the state dict".into(),
                });
            }
        }
        for (k, a) in dict {
            match have.iter().find(|(n, _)| n == k) {
                Some((_, cur)) if cur.dtype() != a.dtype() || cur.shape() != a.shape() => {
                    return Err(Error::StateDict {
                        name: k.clone(),
                        reason: format!(
                            "expected {} {:?}, got {} {:?}",
                            cur.dtype(),
                            cur.shape().dims(),
                            a.dtype(),
                            a.shape().dims()
                        ),
                    });
                }
                None if strict => {
                    return Err(Error::StateDict {
                        name: k.clone(),
                        reason: "is not a parameter or buffer of this model".into(),
                    })
                }
                Some(_) | None => {}
            }
        }
        for (k, a) in dict {
            if have.iter().any(|(n, _)| n == k) {
                self.set_parameter(k, a.clone())?;
            }
        }
        Ok(())
    }
}
