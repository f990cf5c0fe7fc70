//! The pictures: training curves and confusion matrices are valid PNG images of the
//! documented size whose pixels show the expected series and cells, SVGs hold one line
//! per series with a point per epoch, and bad requests are typed errors.

use onde_data::plot::{confusion_matrix, training_curves, TRAIN_COLOUR, VALID_COLOUR};
use onde_data::EpochSummary;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("onde-plot-{}-{name}", std::process::id()))
}

fn history(epochs: usize, with_valid: bool) -> Vec<EpochSummary> {
    (1..=epochs)
        .map(|e| {
            let x = e as f64;
            let metrics = |shift: f64| {
                vec![
                    ("loss".to_string(), 1.5 / x + shift),
                    ("accuracy".to_string(), 0.4 + 0.05 * x - shift),
                ]
            };
            EpochSummary {
                epoch: e,
                lr: 1e-3,
                train: metrics(0.0),
                valid: if with_valid { metrics(0.1) } else { Vec::new() },
                best: false,
            }
        })
        .collect()
}

/// Pixels of exactly `c` in columns `x0..x1`.
fn count(img: &image::RgbImage, c: [u8; 3], x0: u32, x1: u32) -> usize {
    img.enumerate_pixels()
        .filter(|(x, _, p)| *x >= x0 && *x < x1 && p.0 == c)
        .count()
}

#[test]
fn curves_are_a_png_with_both_series_in_both_panels() {
    let path = tmp("curves.png");
    training_curves(&history(6, true), &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (960, 400));
    let (t, v) = (TRAIN_COLOUR, VALID_COLOUR);
    for (x0, x1, panel) in [(0, 480, "loss"), (480, 960, "accuracy")] {
        assert!(
            count(&img, [t.0, t.1, t.2], x0, x1) > 100,
            "train series in {panel}"
        );
        assert!(
            count(&img, [v.0, v.1, v.2], x0, x1) > 100,
            "valid series in {panel}"
        );
    }
    // Text (axis labels, titles) is drawn: dark pixels beyond the axes' lines.
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 90)).count();
    assert!(dark > 2000, "{dark} dark pixels");
    // Without validation: only the training colour.
    training_curves(&history(3, false), &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert!(count(&img, [t.0, t.1, t.2], 0, 960) > 100);
    assert_eq!(count(&img, [v.0, v.1, v.2], 0, 960), 0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn curves_as_svg_have_a_line_per_series_with_a_point_per_epoch() {
    let path = tmp("curves.svg");
    training_curves(&history(5, true), &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("width=\"960\"") && svg.contains("height=\"400\"")
    );
    let lines: Vec<&str> = svg
        .split("<polyline")
        .skip(1)
        .filter(|l| {
            l.contains(&format!(
                "#{:02X}{:02X}{:02X}",
                TRAIN_COLOUR.0, TRAIN_COLOUR.1, TRAIN_COLOUR.2
            )) || l.contains(&format!(
                "#{:02X}{:02X}{:02X}",
                VALID_COLOUR.0, VALID_COLOUR.1, VALID_COLOUR.2
            ))
        })
        .collect();
    // Two panels × two series, plus the four legend samples of two points each.
    let points = |l: &str| {
        let p = l.split("points=\"").nth(1).unwrap();
        p[..p.find('"').unwrap()].split_whitespace().count()
    };
    let series: Vec<usize> = lines.iter().map(|l| points(l)).filter(|&n| n > 2).collect();
    assert_eq!(series, vec![5, 5, 5, 5], "{svg}");
    for text in ["epoch", "loss", "accuracy", "train", "valid"] {
        assert!(
            svg.contains(&format!(">\n{text}\n</text>")),
            "no `{text}` label"
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_confusion_matrix_shades_each_cell_by_its_share_of_the_row() {
    let path = tmp("confusion.png");
    let names: Vec<String> = ["yes", "no", "up"].iter().map(|s| s.to_string()).collect();
    // Class 0 always right, class 1 half wrong, class 2 always predicted as 0.
    let counts = [10, 0, 0, 5, 5, 0, 8, 0, 0];
    confusion_matrix(&counts, &names, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (480, 480));
    // The shade of a cell: the most common non-text pixel in the cell's middle band.
    // Cells are laid on the plotting area; find it from the darkest full-row cell.
    let blue = |p: &image::Rgb<u8>| p.0[2] == 255 && p.0[0] == p.0[1] && p.0[0] < 250;
    let shades: Vec<u8> = img.pixels().filter(|p| blue(p)).map(|p| p.0[0]).collect();
    // Two shades fill the cells besides white: share 1 (10/10, and 8/8 of class 2 in
    // column 0) and 0.5 (two cells); zero cells stay white. Other blues are the
    // anti-aliased edges of the white counts on dark cells: a sliver.
    let full = (255.0 * 0.15) as u8;
    let half = (255.0 * (1.0 - 0.85 * 0.5)) as u8;
    let others = shades.iter().filter(|&&s| s != full && s != half).count();
    let n_full = shades.iter().filter(|&&s| s == full).count();
    let n_half = shades.iter().filter(|&&s| s == half).count();
    // Two full-share cells and two half-share cells, of equal area (text aside).
    let ratio = n_full as f64 / n_half as f64;
    assert!((ratio - 1.0).abs() < 0.1, "{n_full} vs {n_half}");
    assert!(
        others * 20 < n_full + n_half,
        "{others} pixels of other shades"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bad_plot_requests_are_errors_naming_the_file() {
    let e = training_curves(&history(2, true), tmp("curves.jpg")).unwrap_err();
    assert!(e.to_string().contains(".png or .svg"), "{e}");
    let e = training_curves(&[], tmp("none.png")).unwrap_err();
    assert!(e.to_string().contains("no epoch"), "{e}");
    let names = vec!["a".to_string(), "b".to_string()];
    let e = confusion_matrix(&[1, 2, 3], &names, tmp("c.png")).unwrap_err();
    assert!(e.to_string().contains("needs 4 counts, got 3"), "{e}");
    // One class draws (a single cell).
    confusion_matrix(&[3], &["only".to_string()], tmp("one.svg")).unwrap();
    let _ = std::fs::remove_file(tmp("one.svg"));
    // Non-finite values are left out of a line chart (they hung plotters' ticks).
    let odd = [0.0, f64::INFINITY, 1.0, f64::NAN, -1e308, 2.0];
    onde_data::plot::lines("t", &[("a", &odd)], "x", tmp("inf.png")).unwrap();
    let _ = std::fs::remove_file(tmp("inf.png"));
    let e = confusion_matrix(&[], &[], tmp("c.png")).unwrap_err();
    assert!(e.to_string().contains("c.png"), "{e}");
}
