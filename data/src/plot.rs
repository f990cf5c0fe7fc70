//! Pictures of a training run, as PNG or SVG (chosen by the file's extension) through
//! `plotters`: [`training_curves`] (loss and accuracy per epoch, training against
//! validation, one panel each), [`confusion_matrix`] (true class per row, predicted
//! per column, each cell shaded by its share of the row and labelled with its count)
//! and [`heatmap`] (a spectrogram with time and frequency axes).
//!
//! Text is drawn with a font embedded in this crate (DejaVu Sans Mono, its licence in
//! `data/assets/DejaVu-LICENSE`) through `ab_glyph`, so a machine without fonts or
//! fontconfig draws the same picture; SVG text names the same family.

use crate::trainer::EpochSummary;
use crate::{DataError, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The embedded font's family name, registered once.
const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

/// Colour of the training series.
pub const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
/// Colour of the validation series.
pub const VALID_COLOUR: RGBColor = RGBColor(214, 39, 40);

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font shipped with the crate (tested).
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// PNG or SVG, from the extension.
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(file_err(
            path,
            "a plot is written as .png or .svg: name the file with one of these extensions",
        )),
    }
}

/// Draws with `draw` on a `size` canvas written to `path` (PNG or SVG).
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> std::result::Result<(), String>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    }
    match format_of(path)? {
        Format::Png => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(&root).map_err(|e| file_err(path, e))?;
            root.present().map_err(|e| file_err(path, e))
        }
        Format::Svg => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw_svg(&root).map_err(|e| file_err(path, e))?;
            root.present().map_err(|e| file_err(path, e))
        }
    }
}

/// One metric's series over the epochs: (epoch, value) for train and validation.
type Series = Vec<(u32, f64)>;

fn series(history: &[EpochSummary], metric: &str) -> (Series, Series) {
    let pick = |f: &dyn Fn(&EpochSummary) -> Option<f64>| -> Series {
        history
            .iter()
            .filter_map(|s| f(s).filter(|v| v.is_finite()).map(|v| (s.epoch as u32, v)))
            .collect()
    };
    (
        pick(&|s| s.train_metric(metric)),
        pick(&|s| s.valid_metric(metric)),
    )
}

/// A padded value range holding every point (a flat series gets a unit-wide range).
fn range(points: impl Iterator<Item = f64>) -> (f64, f64) {
    // Finite values only, within ±1e300 (plotters' tick search needs a finite span).
    let (lo, hi) = points
        .filter(|v| v.is_finite() && v.abs() < 1e300)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    (lo - pad, hi + pad)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    epochs: usize,
    train: &Series,
    valid: &Series,
    legend_at: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    let (y0, y1) = range(train.iter().chain(valid).map(|p| p.1));
    let x1 = epochs.max(2) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(title)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .x_labels((x1 as usize).min(12))
        .draw()
        .map_err(|e| e.to_string())?;
    for (points, colour, name) in [
        (train, TRAIN_COLOUR, "train"),
        (valid, VALID_COLOUR, "valid"),
    ] {
        if points.is_empty() {
            continue;
        }
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend_at)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    history: &[EpochSummary],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let epochs = history.iter().map(|s| s.epoch).max().unwrap_or(1);
    let (w, _) = root.dim_in_pixel();
    let (left, right) = root.split_horizontally(w / 2);
    let (t, v) = series(history, "loss");
    // Legends where the curves usually are not: a loss falls, an accuracy rises.
    panel(
        &left,
        "loss",
        epochs,
        &t,
        &v,
        SeriesLabelPosition::UpperRight,
    )?;
    let (t, v) = series(history, "accuracy");
    panel(
        &right,
        "accuracy",
        epochs,
        &t,
        &v,
        SeriesLabelPosition::LowerRight,
    )
}

/// Writes the loss and accuracy curves of `history` (train in blue, validation in red,
/// per epoch) side by side as a 960×400 PNG or SVG at `path` (by its extension);
/// creates the parent folder.
///
/// # Errors
/// An empty history, another extension, or a file that cannot be written, named.
pub fn training_curves(history: &[EpochSummary], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    if history.is_empty() {
        return Err(file_err(path, "no epoch to plot"));
    }
    render(
        path,
        (960, 400),
        |r| curves(r, history),
        |r| curves(r, history),
    )
}

fn matrix<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    counts: &[u64],
    names: &[String],
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let k = names.len();
    // Segmented axes: a class's label sits at the middle of its cell.
    let mut chart = ChartBuilder::on(root)
        .caption("confusion matrix", (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
        .map_err(|e| e.to_string())?;
    // Row `t` (true class) is drawn top-down: chart row k-1-t.
    let label = |v: &SegmentValue<usize>, flip: bool| match v {
        SegmentValue::CenterOf(i) if *i < k => names[if flip { k - 1 - i } else { *i }].clone(),
        SegmentValue::CenterOf(_) | SegmentValue::Exact(_) | SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(k.min(40))
        .y_labels(k.min(40))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .x_label_formatter(&|v| label(v, false))
        .y_label_formatter(&|v| label(v, true))
        .draw()
        .map_err(|e| e.to_string())?;
    let cells = (0..k).flat_map(|t| (0..k).map(move |p| (t, p)));
    let row_total = |t: usize| counts[t * k..(t + 1) * k].iter().sum::<u64>().max(1) as f64;
    let at = SegmentValue::Exact;
    chart
        .draw_series(cells.clone().map(|(t, p)| {
            let share = counts[t * k + p] as f64 / row_total(t);
            let c = (255.0 * (1.0 - 0.85 * share)) as u8;
            let colour = RGBColor(c, c, 255);
            Rectangle::new(
                [(at(p), at(k - 1 - t)), (at(p + 1), at(k - t))],
                colour.filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    if k <= 20 {
        let centre = plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        );
        chart
            .draw_series(cells.map(|(t, p)| {
                // White on the dark cells.
                let dark = counts[t * k + p] as f64 / row_total(t) > 0.6;
                let colour = if dark { WHITE } else { BLACK };
                Text::new(
                    counts[t * k + p].to_string(),
                    (SegmentValue::CenterOf(p), SegmentValue::CenterOf(k - 1 - t)),
                    (FONT, 13).into_font().color(&colour).pos(centre),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes a confusion matrix (`counts`, row-major `[true, predicted]` of
/// `names.len()` classes, as [`crate::ClassificationMetrics::confusion`]) as a PNG or
/// SVG at `path`: 480×480 pixels plus 24 per class beyond 10. Each cell is shaded by its
/// share of the row (recall on the diagonal) and shows its count up to 20 classes.
///
/// # Errors
/// `counts` of the wrong length, no class, another extension, or a file that cannot be
/// written, named.
pub fn confusion_matrix(counts: &[u64], names: &[String], path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let k = names.len();
    if k == 0 || counts.len() != k * k {
        return Err(file_err(
            path,
            format!(
                "a confusion matrix of {k} classes needs {} counts, got {}",
                k * k,
                counts.len()
            ),
        ));
    }
    let side = 480 + 24 * k.saturating_sub(10) as u32;
    render(
        path,
        (side, side),
        |r| matrix(r, counts, names),
        |r| matrix(r, counts, names),
    )
}

/// A colour from the low (dark blue) to the high (yellow) end of a viridis-like ramp,
/// `t` in `[0, 1]`.
fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn heat<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cells: &[f64],
    (rows, cols): (usize, usize),
    x: (f64, f64),
    y: (f64, f64),
    y_label: &str,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = cells
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (s)")
        .y_desc(y_label)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    let (dx, dy) = ((x.1 - x.0) / cols as f64, (y.1 - y.0) / rows as f64);
    chart
        .draw_series((0..rows).flat_map(|r| {
            (0..cols).map(move |c| {
                let colour = ramp((cells[r * cols + c] - lo) / span);
                let (x0, y0) = (x.0 + c as f64 * dx, y.0 + r as f64 * dy);
                Rectangle::new([(x0, y0), (x0 + dx, y0 + dy)], colour.filled())
            })
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes `values` (`rows × cols`, row-major: row 0 the lowest frequency, one column
/// per frame) as a PNG or SVG heat map with a time axis over `time` seconds and a
/// vertical axis over `y` labelled `y_label` (a spectrogram). Wide inputs are averaged
/// down to at most 1200 columns; the picture is 1000×420 pixels.
///
/// # Errors
/// `values` of the wrong length, an empty picture, another extension, or a file that
/// cannot be written, named.
pub fn heatmap(
    values: &[f64],
    rows: usize,
    cols: usize,
    time: (f64, f64),
    y: (f64, f64),
    y_label: &str,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    if rows == 0 || cols == 0 || values.len() != rows * cols {
        return Err(file_err(
            path,
            format!(
                "a {rows}×{cols} heat map needs {} values, got {}",
                rows * cols,
                values.len()
            ),
        ));
    }
    // Average groups of frames down to the picture's width.
    let out_cols = cols.min(1200);
    let mut cells = vec![0.0; rows * out_cols];
    for r in 0..rows {
        for c in 0..out_cols {
            let (a, b) = (
                c * cols / out_cols,
                ((c + 1) * cols / out_cols).max(c * cols / out_cols + 1),
            );
            let s: f64 = values[r * cols + a..r * cols + b].iter().sum();
            cells[r * out_cols + c] = s / (b - a) as f64;
        }
    }
    let dims = (rows, out_cols);
    render(
        path,
        (1000, 420),
        |r| heat(r, &cells, dims, time, y, y_label),
        |r| heat(r, &cells, dims, time, y, y_label),
    )
}

/// Colours of [`lines`]' series, in order.
const PALETTE: [RGBColor; 5] = [
    TRAIN_COLOUR,
    VALID_COLOUR,
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

fn line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(&str, &[f64])],
    x_label: &str,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let (y0, y1) = range(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..(n - 1) as f64, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, (name, v)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                v.iter()
                    .enumerate()
                    .filter(|(_, y)| y.is_finite() && y.abs() < 1e300)
                    .map(|(i, &y)| (i as f64, y)),
                style,
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes `series` (name, values at steps 0, 1, …) as lines on one chart, 1000×360
/// pixels, PNG or SVG (an HMM's states against its posteriors).
///
/// # Errors
/// No series or an empty one, another extension, or a file that cannot be written,
/// named.
pub fn lines(
    title: &str,
    series: &[(&str, &[f64])],
    x_label: &str,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    if series.is_empty() || series.iter().any(|(_, v)| v.is_empty()) {
        return Err(file_err(path, "no values to plot"));
    }
    render(
        path,
        (1000, 360),
        |r| line_chart(r, title, series, x_label),
        |r| line_chart(r, title, series, x_label),
    )
}
