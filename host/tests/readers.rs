//! Spectrum-image readers: Ripple (.rpl/.raw) round trips in every layout, type and byte order
//! against the .npy path, hand-made files, error messages, and HyperSpy .hspy files (with the
//! `hdf5` feature) written here in HyperSpy's layout plus, where present, the real espm map.

use edxs::io::counts::SpectrumImage;
use edxs::io::input;
use edxs::io::loaded::{self, Loaded};
use edxs::io::npy;
use edxs::io::ripple::{self, ByteOrder, DataType, RecordBy, RippleHeader};
use edxs_suite::{npy_shape, npy_v1, shared_or_skip, tempdir};
use std::path::{Path, PathBuf};

const ROWS: usize = 3;
const COLS: usize = 4;
const CH: usize = 5;

/// Known counts (pixel-major), with zeros, small enough for every type.
fn counts() -> Vec<f64> {
    (0..ROWS * COLS * CH)
        .map(|i| {
            let (p, l) = (i / CH, i % CH);
            ((p * 7 + l * 3) % 11) as f64 * if (p + l) % 4 == 0 { 0.0 } else { 1.0 }
        })
        .collect()
}

fn same_image(a: &SpectrumImage, b: &SpectrumImage) {
    assert_eq!(a.channels, b.channels);
    assert_eq!(a.pixels, b.pixels);
    assert_eq!(a.shape, b.shape);
    assert_eq!(a.indptr, b.indptr);
    assert_eq!(a.indices, b.indices);
    assert_eq!(a.values, b.values);
}

fn err_of(r: anyhow::Result<Loaded>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn calibrated(dt: DataType) -> RippleHeader {
    let mut h = RippleHeader::new(ROWS, COLS, CH, dt);
    h.energy_offset_kev = Some(0.2);
    h.energy_scale_kev = Some(0.01);
    h.beam_energy_kev = Some(200.0);
    h.elevation_deg = Some(22.0);
    h.azimuth_deg = Some(45.0);
    h.tilt_alpha_deg = Some(10.0);
    h
}

/// exspy's `take_off_angle(10, 45, 22)` (its docstring's example).
const TOA_10_45_22: f64 = 28.865971201155283;

#[test]
fn ripple_round_trip_matches_npy_in_every_type_layout_and_order() {
    let dir = tempdir("roundtrip");
    let data = counts();
    let npy_path = dir.join("ref.npy");
    npy::write_f64(&npy_path, &[ROWS, COLS, CH], &data).unwrap();
    let reference = input::load(&npy_path, None).unwrap();
    assert_eq!(reference.image.shape, Some((ROWS, COLS)));
    assert!(reference.meta.e0_kev.is_none() && reference.meta.elements.is_empty());
    let mut n = 0;
    for dt in DataType::ALL {
        for rb in [RecordBy::Vector, RecordBy::Image] {
            for order in [ByteOrder::Little, ByteOrder::Big, ByteOrder::DontCare] {
                let mut h = calibrated(dt);
                h.record_by = rb;
                h.byte_order = order;
                h.offset = if order == ByteOrder::Big { 16 } else { 0 };
                let rpl = dir.join(format!("si-{n}.rpl"));
                n += 1;
                ripple::write(&rpl, &h, &data).unwrap();
                let got = input::load(&rpl, None)
                    .unwrap_or_else(|e| panic!("{dt:?} {rb:?} {order:?}: {e:#}"));
                same_image(&got.image, &reference.image);
                let (hdr, dense) = ripple::read(&rpl).unwrap();
                assert_eq!(dense, data, "{dt:?} {rb:?} {order:?}");
                assert_eq!(hdr.data_type, dt);
                assert_eq!(hdr.record_by, rb);
                assert!((got.meta.offset_kev.unwrap() - 0.2).abs() < 1e-15);
                assert!((got.meta.scale_kev.unwrap() - 0.01).abs() < 1e-15);
                assert_eq!(got.meta.e0_kev, Some(200.0));
                assert!((got.meta.toa_deg.unwrap() - TOA_10_45_22).abs() < 1e-9);
                assert!(got.meta.thickness_cm.is_none() && got.meta.density.is_none());
            }
        }
    }
}

#[test]
fn hand_made_big_endian_image_layout_is_read_channel_major() {
    // Bytes laid out by hand (not by our writer): 2 rows × 1 col × 3 channels of i16,
    // big-endian, record-by image, i.e. all pixels of channel 0, then channel 1, …
    let dir = tempdir("handmade");
    let rpl = dir.join("hand.rpl");
    std::fs::write(
        &rpl,
        ";File created by RosettaSciIO version 0.7\nkey\tvalue\nbyte-order\tbig-endian\n\
         data-length\t2\ndata-type\tsigned\ndepth\t3\ndepth-name\tEnergy\n\
         depth-origin\t-0.1\ndepth-scale\t0.02\ndepth-units\tkeV\nev-per-chan\t0\nheight\t2\n\
         offset\t0\nrecord-by\timage\nsignal\tEDS_TEM\nwidth\t1\nbeam-energy\t300\n",
    )
    .unwrap();
    // channel-major: c0: p0=1, p1=258 ; c1: p0=0, p1=3 ; c2: p0=513, p1=0
    let raw: Vec<u8> = [1i16, 258, 0, 3, 513, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    std::fs::write(dir.join("hand.raw"), raw).unwrap();
    let got = input::load(&rpl, None).unwrap();
    let (_, dense) = ripple::read(&rpl).unwrap();
    assert_eq!(dense, vec![1.0, 0.0, 513.0, 258.0, 3.0, 0.0]);
    assert_eq!(got.image.shape, Some((2, 1)));
    assert_eq!(got.image.channels, 3);
    assert_eq!(got.meta.offset_kev, Some(-0.1));
    assert_eq!(got.meta.scale_kev, Some(0.02));
    assert_eq!(got.meta.e0_kev, Some(300.0));
    assert_eq!(got.meta.toa_deg, None);
    assert_eq!(got.image.values, vec![1.0, 513.0, 258.0, 3.0]);

    // Our writer produces the same bytes for that image.
    let mut h = RippleHeader::new(2, 1, 3, DataType::I16);
    h.byte_order = ByteOrder::Big;
    h.record_by = RecordBy::Image;
    let out = dir.join("ours.rpl");
    ripple::write(&out, &h, &dense).unwrap();
    assert_eq!(
        std::fs::read(dir.join("ours.raw")).unwrap(),
        std::fs::read(dir.join("hand.raw")).unwrap()
    );
}

#[test]
fn lispix_ev_per_chan_and_ev_units_are_converted_to_kev() {
    let dir = tempdir("evunits");
    let raw = vec![0u8; 2 * 2 * 4];
    std::fs::write(dir.join("a.raw"), &raw).unwrap();
    std::fs::write(dir.join("b.raw"), &raw).unwrap();
    // LISPIX: only ev-per-chan (eV), origin without units taken as eV as well.
    std::fs::write(
        dir.join("a.rpl"),
        "key\tvalue\nwidth\t2\nheight\t2\ndepth\t4\noffset\t0\ndata-length\t1\n\
         data-type\tunsigned\nbyte-order\tdont-care\nrecord-by\tvector\nev-per-chan\t10\n\
         depth-origin\t200 ; comment\n",
    )
    .unwrap();
    // HyperSpy with an eV axis; ev-per-chan disagrees and must lose to depth-scale.
    std::fs::write(
        dir.join("b.rpl"),
        "key\tvalue\nwidth\t2\nheight\t2\ndepth\t4\noffset\t0\ndata-Length\t1\n\
         data-type\tunsigned\nbyte-order\tdont-care\nrecord-by\tvector\nev-per-chan\t7\n\
         depth-scale\t5\ndepth-origin\t-100\ndepth-units\teV\n",
    )
    .unwrap();
    let a = ripple::read(&dir.join("a.rpl")).unwrap().0;
    assert!((a.energy_scale_kev.unwrap() - 0.01).abs() < 1e-15);
    assert!((a.energy_offset_kev.unwrap() - 0.2).abs() < 1e-15);
    let b = ripple::read(&dir.join("b.rpl")).unwrap().0;
    assert!((b.energy_scale_kev.unwrap() - 0.005).abs() < 1e-15);
    assert!((b.energy_offset_kev.unwrap() + 0.1).abs() < 1e-15);
    // HyperSpy's uncalibrated axis (units written as "None"): no energy axis unless the
    // signal is EDS, whose axes exspy takes as keV.
    let plain = "key\tvalue\nwidth\t2\nheight\t2\ndepth\t4\noffset\t0\ndata-length\t1\n\
                 data-type\tunsigned\nbyte-order\tdont-care\nrecord-by\tvector\nev-per-chan\t1\n\
                 depth-scale\t1.0\ndepth-origin\t0.0\ndepth-units\tNone\ndate\t\nsignal\t\n";
    std::fs::write(dir.join("a.rpl"), plain).unwrap();
    let a = ripple::read(&dir.join("a.rpl")).unwrap().0;
    assert_eq!((a.energy_offset_kev, a.energy_scale_kev), (None, None));
    std::fs::write(
        dir.join("a.rpl"),
        plain.replace("signal\t\n", "signal\tEDS_TEM\n"),
    )
    .unwrap();
    let a = ripple::read(&dir.join("a.rpl")).unwrap().0;
    assert_eq!(
        (a.energy_offset_kev, a.energy_scale_kev),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(a.signal.as_deref(), Some("EDS_TEM"));
    // All-zero counts load (an empty sparse image), with their shape.
    let l = input::load(&dir.join("b.rpl"), Some((2, 2))).unwrap();
    assert_eq!(l.image.values.len(), 0);
}

#[test]
fn truncated_or_oversized_raw_is_an_error_naming_the_sizes() {
    let dir = tempdir("truncated");
    let rpl = dir.join("t.rpl");
    ripple::write(&rpl, &calibrated(DataType::U16), &counts()).unwrap();
    let raw = dir.join("t.raw");
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(bytes.len(), ROWS * COLS * CH * 2);
    std::fs::write(&raw, &bytes[..bytes.len() - 1]).unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(e.contains("t.raw") && e.contains("truncated"), "{e}");
    assert!(
        e.contains("width 4") && e.contains("depth 5") && e.contains("119"),
        "{e}"
    );
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0]);
    std::fs::write(&raw, &longer).unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(e.contains("122 bytes") && e.contains("longer"), "{e}");
    std::fs::remove_file(&raw).unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(e.contains("t.raw") && e.contains("beside"), "{e}");
}

#[test]
fn corrupt_headers_are_errors_naming_the_key_and_value() {
    let dir = tempdir("corrupt");
    std::fs::write(dir.join("h.raw"), vec![0u8; 2 * 2 * 3 * 4]).unwrap();
    let good = "width\t2\nheight\t2\ndepth\t3\noffset\t0\ndata-length\t4\ndata-type\tfloat\n\
                byte-order\tlittle-endian\nrecord-by\tvector\n";
    let cases: &[(&str, &str, &[&str])] = &[
        ("depth\t3\n", "", &["no 'depth' key"]),
        ("width\t2", "width\tabc", &["width 'abc'"]),
        (
            "data-type\tfloat",
            "data-type\tcomplex",
            &["data-type 'complex'"],
        ),
        (
            "data-length\t4",
            "data-length\t2",
            &["data-length 2", "float"],
        ),
        (
            "record-by\tvector",
            "record-by\tsideways",
            &["record-by 'sideways'"],
        ),
        (
            "record-by\tvector",
            "record-by\tdont-care",
            &["single image"],
        ),
        (
            "byte-order\tlittle-endian",
            "byte-order\tmiddle",
            &["byte-order 'middle'"],
        ),
        ("height\t2", "height\t0", &["height is 0"]),
        ("height\t2\n", "height\n", &["line", "not 'key<TAB>value'"]),
        (
            "offset\t0\n",
            "offset\t0\ndepth-scale\t0\n",
            &["depth-scale 0"],
        ),
        (
            "offset\t0\n",
            "offset\t0\ndepth-scale\tNaN\n",
            &["depth-scale 'NaN'"],
        ),
        (
            "offset\t0\n",
            "offset\t0\ndepth-scale\t1\ndepth-units\tnm\n",
            &["depth-units 'nm'"],
        ),
        (
            "offset\t0\n",
            "offset\t0\nbeam-energy\t-200\n",
            &["beam energy", "-200"],
        ),
    ];
    for (i, (from, to, needles)) in cases.iter().enumerate() {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "case {i} did not change the header");
        let rpl = dir.join("h.rpl");
        std::fs::write(&rpl, text).unwrap();
        let e = err_of(input::load(&rpl, None));
        assert!(e.contains("h.rpl"), "case {i}: {e}");
        for n in *needles {
            assert!(e.contains(n), "case {i}: '{n}' not in: {e}");
        }
    }
    // Binary junk where the header should be.
    let rpl = dir.join("h.rpl");
    std::fs::write(&rpl, [0u8, 159, 146, 150, 7, 0, 1]).unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(e.contains("h.rpl") && e.contains("corrupt"), "{e}");
    std::fs::write(&rpl, "").unwrap();
    assert!(err_of(input::load(&rpl, None)).contains("empty header"));
}

#[test]
fn bad_counts_are_errors_naming_pixel_and_channel() {
    let dir = tempdir("badcounts");
    let mut data = counts();
    data[2 * CH + 3] = f64::NAN;
    let rpl = dir.join("nan.rpl");
    ripple::write(
        &rpl,
        &RippleHeader::new(ROWS, COLS, CH, DataType::F32),
        &data,
    )
    .unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(
        e.contains("nan.rpl") && e.contains("pixel 2") && e.contains("channel 3"),
        "{e}"
    );
    let mut data = counts();
    data[COLS * CH + 1] = -4.0;
    let rpl = dir.join("neg.rpl");
    ripple::write(
        &rpl,
        &RippleHeader::new(ROWS, COLS, CH, DataType::I16),
        &data,
    )
    .unwrap();
    let e = err_of(input::load(&rpl, None));
    assert!(e.contains("row 1, col 0") && e.contains("-4"), "{e}");
    // The writer refuses what an integer type cannot hold.
    let mut data = counts();
    data[7] = 1.5;
    let e = ripple::write(
        &dir.join("x.rpl"),
        &RippleHeader::new(ROWS, COLS, CH, DataType::U8),
        &data,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("1.5"), "{e:#}");
    data[7] = 256.0;
    assert!(ripple::write(
        &dir.join("x.rpl"),
        &RippleHeader::new(ROWS, COLS, CH, DataType::U8),
        &data
    )
    .is_err());
    assert!(ripple::write(
        &dir.join("x.rpl"),
        &RippleHeader::new(ROWS, COLS, CH, DataType::U16),
        &data
    )
    .is_ok());
}

#[test]
fn load_checks_extension_existence_and_shape() {
    let dir = tempdir("load");
    let e = err_of(input::load(&dir.join("none.rpl"), None));
    assert!(e.contains("none.rpl") && e.contains("no such file"), "{e}");
    let txt = dir.join("x.txt");
    std::fs::write(&txt, "1 2 3").unwrap();
    let e = err_of(input::load(&txt, None));
    assert!(e.contains("x.txt") && e.contains("'txt'"), "{e}");
    let rpl = dir.join("s.rpl");
    ripple::write(&rpl, &calibrated(DataType::U8), &counts()).unwrap();
    let e = err_of(input::load(&rpl, Some((4, 3))));
    assert!(e.contains("4x3") && e.contains("height 3"), "{e}");
    assert!(input::load(&rpl, Some((3, 4))).is_ok());
    // The .raw path leads to its header.
    let l = input::load(&dir.join("s.raw"), None).unwrap();
    assert_eq!(l.image.pixels, ROWS * COLS);
    // P×L .npy with a shape.
    let npy_path = dir.join("pl.npy");
    npy::write_f64(&npy_path, &[ROWS * COLS, CH], &counts()).unwrap();
    let l = input::load(&npy_path, Some((ROWS, COLS))).unwrap();
    assert_eq!(l.image.shape, Some((ROWS, COLS)));
    assert!(input::load(&npy_path, Some((5, 5))).is_err());
}

#[test]
fn take_off_angle_matches_exspy() {
    // exspy.utils.eds.take_off_angle(tilt_stage, azimuth, elevation, beta_tilt)
    assert!((loaded::take_off_angle_deg(10.0, 45.0, 22.0, 0.0) - TOA_10_45_22).abs() < 1e-12);
    assert!((loaded::take_off_angle_deg(10.0, 45.0, 22.0, 5.0) - 32.55209099252465).abs() < 1e-12);
    assert!((loaded::take_off_angle_deg(0.0, 0.0, 35.0, 0.0) - 35.0).abs() < 1e-12);
    assert!((loaded::take_off_angle_deg(0.0, 45.0, 22.0, 0.0) - 22.0).abs() < 1e-12);
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn hspy_without_the_feature_says_how_to_enable_it() {
    let dir = tempdir("nohdf5");
    let p = dir.join("x.hspy");
    std::fs::write(&p, b"\x89HDF\r\n\x1a\n").unwrap();
    let e = err_of(input::load(&p, None));
    assert!(
        e.contains("x.hspy") && e.contains("without HDF5 support"),
        "{e}"
    );
    assert!(
        e.contains("--features hdf5") && e.contains("libhdf5-dev"),
        "{e}"
    );
}

/// The real espm map, if this checkout has `../shared/data` beside it; else a printed
/// "SKIP" (CI sets EDXS_SHARED_DATA=1, and then it must be there).
fn shared_hspy(test: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/88_ES-LP_G8/88_ES-LP_G8_selection2_cropped2.hspy");
    shared_or_skip(&p, "EDXS_SHARED_DATA", test)
}

#[cfg(feature = "hdf5")]
mod hdf5 {
    use super::*;
    use h5::types::VarLenUnicode;
    use hdf5_metno as h5;

    fn s(v: &str) -> VarLenUnicode {
        v.parse().unwrap()
    }

    fn attr_f64(g: &h5::Location, name: &str, v: f64) {
        g.new_attr::<f64>()
            .create(name)
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }

    fn attr_i32(g: &h5::Location, name: &str, v: i32) {
        g.new_attr::<i32>()
            .create(name)
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }

    fn attr_str(g: &h5::Location, name: &str, v: &str) {
        g.new_attr::<VarLenUnicode>()
            .create(name)
            .unwrap()
            .write_scalar(&s(v))
            .unwrap();
    }

    fn attr_bool(g: &h5::Location, name: &str, v: bool) {
        g.new_attr::<bool>()
            .create(name)
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }

    fn group(g: &h5::Group, path: &str) -> h5::Group {
        let mut g = g.clone();
        for step in path.split('/') {
            g = if g.link_exists(step) {
                g.group(step).unwrap()
            } else {
                g.create_group(step).unwrap()
            };
        }
        g
    }

    struct AxisSpec<'a> {
        name: &'a str,
        size: usize,
        offset: f64,
        scale: f64,
        units: &'a str,
        navigate: bool,
    }

    /// Writes a HyperSpy-layout file (format 3.x, as RosettaSciIO writes it) with `data` in array
    /// order of shape `dims`, the axes given, and the metadata attributes set by `meta`.
    fn write_hspy(
        path: &Path,
        dims: &[usize],
        data: &[u16],
        axes: &[AxisSpec],
        meta: impl FnOnce(&h5::Group),
    ) {
        let f = h5::File::create(path).unwrap();
        attr_str(&f, "file_format", "HyperSpy");
        attr_str(&f, "file_format_version", "3.3");
        let exp = group(&f, "Experiments/EDX");
        attr_str(&exp, "package", "exspy");
        let chunk: Vec<usize> = dims.iter().map(|&d| d.min(2)).collect();
        let ds = exp
            .new_dataset::<u16>()
            .shape(dims)
            .chunk(chunk)
            .shuffle()
            .deflate(4)
            .create("data")
            .unwrap();
        ds.write_raw(data).unwrap();
        for (i, a) in axes.iter().enumerate() {
            let g = group(&exp, &format!("axis-{i}"));
            attr_str(&g, "_type", "UniformDataAxis");
            attr_str(&g, "name", a.name);
            attr_i32(&g, "size", a.size as i32);
            attr_f64(&g, "offset", a.offset);
            attr_f64(&g, "scale", a.scale);
            attr_str(&g, "units", a.units);
            attr_bool(&g, "navigate", a.navigate);
            attr_bool(&g, "is_binned", !a.navigate);
        }
        let md = group(&exp, "metadata");
        attr_str(&group(&md, "Signal"), "signal_type", "EDS_TEM");
        attr_str(&group(&md, "General"), "title", "EDX");
        group(&exp, "original_metadata");
        meta(&md);
    }

    fn yxl_axes(ch_units: &'static str, offset: f64, scale: f64) -> Vec<AxisSpec<'static>> {
        vec![
            AxisSpec {
                name: "height",
                size: ROWS,
                offset: 0.0,
                scale: 1.5,
                units: "nm",
                navigate: true,
            },
            AxisSpec {
                name: "width",
                size: COLS,
                offset: 0.0,
                scale: 1.5,
                units: "nm",
                navigate: true,
            },
            AxisSpec {
                name: "Energy",
                size: CH,
                offset,
                scale,
                units: ch_units,
                navigate: false,
            },
        ]
    }

    fn counts_u16() -> Vec<u16> {
        counts().iter().map(|&v| v as u16).collect()
    }

    #[test]
    fn hspy_written_in_hyperspys_layout_reads_back_with_its_metadata() {
        let dir = tempdir("hspy");
        let p = dir.join("t.hspy");
        write_hspy(
            &p,
            &[ROWS, COLS, CH],
            &counts_u16(),
            &yxl_axes("eV", 500.0, 10.0),
            |md| {
                let tem = group(md, "Acquisition_instrument/TEM");
                // exspy's set_microscope_parameters stores the beam energy under "beam_energy ".
                attr_i32(&tem, "beam_energy ", 200);
                let eds = group(&tem, "Detector/EDS");
                attr_f64(&eds, "elevation_angle", 22.0);
                attr_i32(&eds, "azimuth_angle", 45);
                let stage = group(&tem, "Stage");
                attr_f64(&stage, "tilt_alpha", 10.0);
                attr_f64(&stage, "tilt_beta", 5.0);
                let sample = group(md, "Sample");
                let list = sample
                    .new_dataset::<VarLenUnicode>()
                    .shape(2)
                    .create("_list_elements")
                    .unwrap();
                list.write_raw(&[s("Fe"), s("O")]).unwrap();
                attr_f64(&sample, "thickness", 2e-5);
                attr_f64(&sample, "density", 3.5);
            },
        );
        let npy_path = dir.join("ref.npy");
        npy::write_f64(&npy_path, &[ROWS, COLS, CH], &counts()).unwrap();
        let reference = input::load(&npy_path, None).unwrap();
        let got = input::load(&p, None).unwrap();
        same_image(&got.image, &reference.image);
        assert!((got.meta.offset_kev.unwrap() - 0.5).abs() < 1e-15);
        assert!((got.meta.scale_kev.unwrap() - 0.01).abs() < 1e-15);
        assert_eq!(got.meta.e0_kev, Some(200.0));
        assert_eq!(got.meta.elements, vec!["Fe".to_string(), "O".to_string()]);
        assert!((got.meta.toa_deg.unwrap() - 32.55209099252465).abs() < 1e-9);
        assert_eq!(got.meta.thickness_cm, Some(2e-5));
        assert_eq!(got.meta.density, Some(3.5));
        assert!(input::load(&p, Some((COLS, ROWS))).is_err());
    }

    #[test]
    fn hspy_stored_take_off_angle_wins_and_a_leading_energy_axis_is_moved_last() {
        let dir = tempdir("hspy2");
        let p = dir.join("t.hdf5");
        // Array order (channels, rows, cols): value at (l, y, x) is counts()[(y*COLS+x)*CH + l].
        let c = counts_u16();
        let mut data = Vec::new();
        for l in 0..CH {
            for pix in 0..ROWS * COLS {
                data.push(c[pix * CH + l]);
            }
        }
        let axes = vec![
            // No units: keV, because the signal is EDS_TEM.
            AxisSpec {
                name: "Energy",
                size: CH,
                offset: 0.3,
                scale: 0.02,
                units: "<undefined>",
                navigate: false,
            },
            AxisSpec {
                name: "height",
                size: ROWS,
                offset: 0.0,
                scale: 1.0,
                units: "nm",
                navigate: true,
            },
            AxisSpec {
                name: "width",
                size: COLS,
                offset: 0.0,
                scale: 1.0,
                units: "nm",
                navigate: true,
            },
        ];
        write_hspy(&p, &[CH, ROWS, COLS], &data, &axes, |md| {
            let eds = group(md, "Acquisition_instrument/TEM/Detector/EDS");
            attr_f64(&eds, "take_off_angle", 18.5);
            attr_f64(&eds, "elevation_angle", 35.0);
            // An older list layout: a group of string attributes.
            let g = group(md, "Sample/_list_3_elements");
            attr_str(&g, "0", "Si");
            attr_str(&g, "1", "Al");
            attr_str(&g, "2", "O");
            attr_str(&group(md, "Sample"), "thickness", "_None_");
        });
        let npy_path = dir.join("ref.npy");
        npy::write_f64(&npy_path, &[ROWS, COLS, CH], &counts()).unwrap();
        let got = input::load(&p, None).unwrap();
        same_image(&got.image, &input::load(&npy_path, None).unwrap().image);
        assert_eq!(got.meta.offset_kev, Some(0.3));
        assert_eq!(got.meta.scale_kev, Some(0.02));
        assert_eq!(got.meta.toa_deg, Some(18.5));
        assert_eq!(got.meta.e0_kev, None);
        assert_eq!(got.meta.elements, vec!["Si", "Al", "O"]);
        assert_eq!(got.meta.thickness_cm, None);
    }

    #[test]
    fn hspy_errors_name_the_file_and_the_field() {
        let dir = tempdir("hspy3");
        // Wrong dimensionality.
        let p = dir.join("d1.hspy");
        write_hspy(&p, &[CH], &counts_u16()[..CH], &[], |_| {});
        let e = err_of(input::load(&p, None));
        assert!(e.contains("d1.hspy") && e.contains("1 dimensions"), "{e}");
        // Two signal axes (an image stack, not spectra).
        let p = dir.join("img.hspy");
        let mut axes = yxl_axes("keV", 0.1, 0.01);
        axes[1].navigate = false;
        write_hspy(&p, &[ROWS, COLS, CH], &counts_u16(), &axes, |_| {});
        let e = err_of(input::load(&p, None));
        assert!(e.contains("img.hspy") && e.contains("2 signal axes"), "{e}");
        // An energy axis in a length unit.
        let p = dir.join("um.hspy");
        write_hspy(
            &p,
            &[ROWS, COLS, CH],
            &counts_u16(),
            &yxl_axes("µm", 0.1, 0.01),
            |_| {},
        );
        let e = err_of(input::load(&p, None));
        assert!(e.contains("axis-2") && e.contains("'µm'"), "{e}");
        // A beam energy that is not a number.
        let p = dir.join("e0.hspy");
        write_hspy(
            &p,
            &[ROWS, COLS, CH],
            &counts_u16(),
            &yxl_axes("keV", 0.1, 0.01),
            |md| {
                attr_str(
                    &group(md, "Acquisition_instrument/TEM"),
                    "beam_energy",
                    "high",
                );
            },
        );
        let e = err_of(input::load(&p, None));
        assert!(
            e.contains("e0.hspy") && e.contains("beam_energy") && e.contains("'high'"),
            "{e}"
        );
        // Axis size disagreeing with the data.
        let p = dir.join("size.hspy");
        let mut axes = yxl_axes("keV", 0.1, 0.01);
        axes[0].size = 7;
        write_hspy(&p, &[ROWS, COLS, CH], &counts_u16(), &axes, |_| {});
        let e = err_of(input::load(&p, None));
        assert!(e.contains("axis-0 has size 7"), "{e}");
        // Not HyperSpy at all.
        let p = dir.join("plain.h5");
        h5::File::create(&p).unwrap().create_group("x").unwrap();
        let e = err_of(input::load(&p, None));
        assert!(e.contains("plain.h5") && e.contains("Experiments"), "{e}");
        let p = dir.join("junk.hspy");
        std::fs::write(&p, "not hdf5").unwrap();
        let e = err_of(input::load(&p, None));
        assert!(e.contains("junk.hspy") && e.contains("HDF5"), "{e}");
    }

    #[test]
    fn hspy_declaring_a_huge_shape_is_refused_by_the_memory_plan_before_any_read() {
        // A few KB on disk (chunked, never written: every value is the fill value) declaring
        // 100000 x 100000 x 1980 counts; it used to abort allocating them as f64.
        let dir = tempdir("hspy_huge");
        let p = dir.join("huge.hspy");
        let f = h5::File::create(&p).unwrap();
        let exp = group(&f, "Experiments/EDX");
        exp.new_dataset::<u16>()
            .shape([100_000, 100_000, 1980])
            .chunk([1, 64, 1980])
            .deflate(4)
            .create("data")
            .unwrap();
        drop(f);
        assert!(std::fs::metadata(&p).unwrap().len() < 64 * 1024);
        let e = err_of(input::load(&p, None));
        assert!(
            e.contains("huge.hspy") && e.contains("[100000, 100000, 1980]") && e.contains("needs"),
            "{e}"
        );
    }

    #[test]
    fn hspy_larger_than_one_slab_reads_every_pixel_in_order() {
        // 3 x 2048 x 1400 u16 values: 2.9 M per row of the scan, so the reader's 8 M-value
        // slabs take two rows, then one; the channels come first, so each slab is reordered.
        let (rows, cols, ch) = (3usize, 2048usize, 1400usize);
        let value = |p: usize, l: usize| -> u16 {
            let hash = (p * 7 + l * 13) % 97;
            if hash == 0 {
                1 + ((p + l) % 5) as u16
            } else {
                0
            }
        };
        let mut data = vec![0u16; ch * rows * cols];
        for l in 0..ch {
            for p in 0..rows * cols {
                data[l * rows * cols + p] = value(p, l);
            }
        }
        let dir = tempdir("hspy_slabs");
        let p = dir.join("slabs.hspy");
        let f = h5::File::create(&p).unwrap();
        let exp = group(&f, "Experiments/EDX");
        exp.new_dataset::<u16>()
            .shape([ch, rows, cols])
            .chunk([64, 1, 256])
            .deflate(1)
            .create("data")
            .unwrap()
            .write_raw(&data)
            .unwrap();
        for (i, nav) in [false, true, true].into_iter().enumerate() {
            attr_bool(&group(&exp, &format!("axis-{i}")), "navigate", nav);
        }
        drop(f);
        let got = input::load(&p, None).unwrap().image;
        assert_eq!((got.pixels, got.channels), (rows * cols, ch));
        assert_eq!(got.shape, Some((rows, cols)));
        let mut want = Vec::new();
        for p in 0..rows * cols {
            for l in 0..ch {
                let v = value(p, l);
                if v != 0 {
                    want.push((p, l as u32, v as f64));
                }
            }
        }
        let mut have = Vec::new();
        for p in 0..got.pixels {
            for i in got.indptr[p]..got.indptr[p + 1] {
                have.push((p, got.indices[i], got.values[i]));
            }
        }
        assert_eq!(have.len(), want.len());
        assert!(
            have == want,
            "first difference at {:?}",
            have.iter().zip(&want).position(|(a, b)| a != b)
        );
    }

    #[test]
    fn hspy_negative_counts_name_pixel_and_channel() {
        let dir = tempdir("hspy4");
        let p = dir.join("neg.hspy");
        let f = h5::File::create(&p).unwrap();
        let exp = group(&f, "Experiments/EDX");
        let mut v: Vec<f32> = counts().iter().map(|&x| x as f32).collect();
        v[(COLS + 2) * CH + 4] = -1.0;
        exp.new_dataset::<f32>()
            .shape([ROWS, COLS, CH])
            .create("data")
            .unwrap()
            .write_raw(&v)
            .unwrap();
        drop(f);
        let e = err_of(input::load(&p, None));
        assert!(
            e.contains("neg.hspy") && e.contains("row 1, col 2") && e.contains("channel 4"),
            "{e}"
        );
    }

    #[test]
    fn real_espm_map_loads_with_its_metadata() {
        let Some(p) = shared_hspy("real_espm_map_loads_with_its_metadata") else {
            return;
        };
        let got = input::load(&p, None).unwrap();
        assert_eq!(got.image.shape, Some((80, 80)));
        assert_eq!(got.image.pixels, 6400);
        assert_eq!(got.image.channels, 1917);
        assert!((got.meta.offset_kev.unwrap() - 0.83151949728).abs() < 1e-12);
        assert!((got.meta.scale_kev.unwrap() - 0.01000467828).abs() < 1e-12);
        let total: f64 = got.image.values.iter().sum();
        assert_eq!(total, 716_887.0);
        assert_eq!(got.image.values.iter().cloned().fold(0.0, f64::max), 21.0);
        assert_eq!(got.meta.e0_kev, Some(200.0));
        let el: Vec<&str> = got.meta.elements.iter().map(String::as_str).collect();
        assert_eq!(
            el,
            ["Al", "Ca", "Fe", "Hf", "Lu", "Mg", "Nd", "O", "Si", "Sm", "U"]
        );
        // elevation 22°, azimuth 45°, no tilt: exspy gives exactly the elevation.
        assert!((got.meta.toa_deg.unwrap() - 22.0).abs() < 1e-9);
        assert_eq!(got.meta.thickness_cm, None);
        assert_eq!(got.meta.density, None);
    }
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn real_espm_map_needs_the_hdf5_feature() {
    if let Some(p) = shared_hspy("real_espm_map_needs_the_hdf5_feature") {
        assert!(err_of(input::load(&p, None)).contains("--features hdf5"));
    }
}

/// A .npy file written byte by byte (version 1.0), so every dtype, byte order and memory order
/// is covered without trusting our own writer.
fn raw_npy(path: &Path, descr: &str, fortran: bool, shape: &[usize], data: &[f64]) {
    // Element order in the file: C order walks the last axis fastest, Fortran the first.
    let n = data.len();
    let mut order: Vec<usize> = (0..n).collect();
    if fortran {
        let nd = shape.len();
        order.clear();
        let mut idx = vec![0usize; nd];
        for _ in 0..n {
            let mut flat = 0;
            for d in 0..nd {
                flat = flat * shape[d] + idx[d];
            }
            order.push(flat);
            for d in 0..nd {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
    }
    let big = descr.starts_with('>');
    let mut body = Vec::with_capacity(n * 8);
    for i in order {
        let v = data[i];
        let mut b: Vec<u8> = match &descr[1..] {
            "f8" => v.to_le_bytes().to_vec(),
            "f4" => (v as f32).to_le_bytes().to_vec(),
            "i8" => (v as i64).to_le_bytes().to_vec(),
            "i4" => (v as i32).to_le_bytes().to_vec(),
            "i2" => (v as i16).to_le_bytes().to_vec(),
            "i1" => (v as i8).to_le_bytes().to_vec(),
            "u8" => (v as u64).to_le_bytes().to_vec(),
            "u4" => (v as u32).to_le_bytes().to_vec(),
            "u2" => (v as u16).to_le_bytes().to_vec(),
            "u1" => (v as u8).to_le_bytes().to_vec(),
            other => panic!("{other}"),
        };
        if big {
            b.reverse();
        }
        body.extend_from_slice(&b);
    }
    let out = npy_v1(&format!("'{descr}'"), fortran, &npy_shape(shape), &body);
    std::fs::write(path, out).unwrap();
}

#[test]
fn npy_every_dtype_byte_order_and_memory_order_reads_the_same_counts() {
    let dir = tempdir("npy-dtypes");
    let data = counts();
    let reference =
        SpectrumImage::from_dense("ref", &data, ROWS * COLS, CH, Some((ROWS, COLS))).unwrap();
    let flat = SpectrumImage::from_dense("ref", &data, ROWS * COLS, CH, None).unwrap();
    let mut n = 0;
    for descr in [
        "<f8", ">f8", "<f4", ">f4", "<i8", "<i4", ">i4", "<i2", ">i2", "|i1", "<u8", "<u4", "<u2",
        ">u2", "|u1",
    ] {
        for fortran in [false, true] {
            let p3 = dir.join(format!("a{n}.npy"));
            raw_npy(&p3, descr, fortran, &[ROWS, COLS, CH], &data);
            let got = SpectrumImage::read_npy(&p3, None)
                .unwrap_or_else(|e| panic!("{descr} {fortran}: {e:#}"));
            same_image(&got, &reference);
            let p2 = dir.join(format!("b{n}.npy"));
            raw_npy(&p2, descr, fortran, &[ROWS * COLS, CH], &data);
            same_image(&SpectrumImage::read_npy(&p2, None).unwrap(), &flat);
            same_image(
                &SpectrumImage::read_npy(&p2, Some((ROWS, COLS))).unwrap(),
                &reference,
            );
            // One byte short: an error that says so, for the streamed and the dense path.
            let bytes = std::fs::read(&p3).unwrap();
            std::fs::write(&p3, &bytes[..bytes.len() - 1]).unwrap();
            let e = format!("{:#}", SpectrumImage::read_npy(&p3, None).unwrap_err());
            assert!(e.contains("truncated"), "{descr} {fortran}: {e}");
            n += 1;
        }
    }
}

#[test]
fn npy_counts_must_be_finite_and_non_negative_but_minus_zero_is_zero() {
    let dir = tempdir("npy-values");
    for (bad, what) in [
        (f64::NAN, "NaN"),
        (-1.0, "-1"),
        (f64::INFINITY, "inf"),
        (-f64::INFINITY, "-inf"),
    ] {
        let mut data = counts();
        data[2 * CH + 3] = bad; // pixel 2 = row 0, col 2; channel 3
        let p = dir.join("bad.npy");
        npy::write_f64(&p, &[ROWS, COLS, CH], &data).unwrap();
        let e = format!("{:#}", SpectrumImage::read_npy(&p, None).unwrap_err());
        assert!(
            e.contains("pixel 2 (row 0, col 2), channel 3") && e.contains(what),
            "{what}: {e}"
        );
    }
    let mut data = counts();
    data[5] = -0.0;
    let p = dir.join("minus-zero.npy");
    npy::write_f64(&p, &[ROWS, COLS, CH], &data).unwrap();
    let got = SpectrumImage::read_npy(&p, None).unwrap();
    data[5] = 0.0;
    let want =
        SpectrumImage::from_dense("ref", &data, ROWS * COLS, CH, Some((ROWS, COLS))).unwrap();
    same_image(&got, &want);
}
