//! Facts about the generated tables, checked against espm 1.1.3's data files.

use edxs_tables::{
    line_table, symbol, z_from_symbol, Line, LineTable, ELEMENTS, IUPAC_NAMES, LINES_100KEV,
    LINES_200KEV, LINES_300KEV, MAX_Z, SDD_EFFICIENCY, SDD_ENERGIES, SIEGBAHN_TO_IUPAC,
};

fn all_tables() -> [&'static LineTable; 3] {
    [&LINES_100KEV, &LINES_200KEV, &LINES_300KEV]
}

fn find(table: &LineTable, z: u8, name: &str) -> Line {
    *table
        .lines_of(z)
        .iter()
        .find(|l| l.iupac() == name)
        .unwrap_or_else(|| panic!("line {name} of Z={z} missing"))
}

#[test]
fn line_counts_match_the_json_files() {
    assert_eq!(LINES_100KEV.lines.len(), 2572);
    assert_eq!(LINES_200KEV.lines.len(), 2483);
    assert_eq!(LINES_300KEV.lines.len(), 2431);
    assert_eq!(LINES_100KEV.beam_energy_kev, 100);
    assert_eq!(LINES_200KEV.beam_energy_kev, 200);
    assert_eq!(LINES_300KEV.beam_energy_kev, 300);
}

#[test]
fn element_ranges_partition_the_lines() {
    for t in all_tables() {
        let mut next = 0usize;
        let mut n_elements = 0;
        for z in 0..=MAX_Z {
            let (start, len) = t.element_ranges[z as usize];
            if len == 0 {
                assert_eq!(start, 0, "absent Z={z} must be (0, 0)");
                assert!(t.lines_of(z).is_empty());
                continue;
            }
            assert_eq!(start as usize, next, "Z={z} at {} keV", t.beam_energy_kev);
            next += len as usize;
            n_elements += 1;
            // No duplicate transition within an element.
            let lines = t.lines_of(z);
            for (i, a) in lines.iter().enumerate() {
                assert!(lines[i + 1..].iter().all(|b| b.name != a.name));
            }
        }
        assert_eq!(next, t.lines.len());
        assert_eq!(n_elements, 94, "Z 5..=98 all have lines");
        assert!(t.lines_of(4).is_empty() && !t.lines_of(5).is_empty());
        assert!(!t.lines_of(98).is_empty());
        assert!(t.lines_of(99).is_empty() && t.lines_of(255).is_empty());
    }
}

#[test]
fn iron_k_lines_at_200_kev() {
    let fe = z_from_symbol("Fe").unwrap();
    let kl3 = find(&LINES_200KEV, fe, "KL3");
    assert_eq!(kl3.energy, 6.4039);
    assert_eq!(kl3.cs, 6.276699353379618e-23);
    assert_eq!(kl3.iupac(), "KL3");
    let kl2 = find(&LINES_200KEV, fe, "KL2");
    assert_eq!(kl2.energy, 6.3909);
    assert_eq!(kl2.cs, 3.205088747388646e-23);
    // espm's per-element order is the JSON key order: KL2 before KL3 for Fe.
    let names: Vec<&str> = LINES_200KEV.lines_of(26).iter().map(Line::iupac).collect();
    assert_eq!(&names[..2], &["KL2", "KL3"]);
    // Cross-sections depend on the beam energy, line energies do not.
    let kl3_100 = find(&LINES_100KEV, fe, "KL3");
    assert_eq!(kl3_100.energy, kl3.energy);
    assert_ne!(kl3_100.cs, kl3.cs);
}

#[test]
fn line_energies_and_cross_sections_are_physical() {
    for t in all_tables() {
        let e0 = t.beam_energy_kev as f64;
        for l in t.lines {
            assert!(l.energy > 0.0 && l.energy < 20.0, "{l:?}");
            assert!(l.energy < e0, "{l:?}");
            assert!(l.cs > 1e-25 && l.cs < 1e-21, "{l:?}");
            assert!((l.name as usize) < IUPAC_NAMES.len());
            assert_ne!(l.iupac(), "?");
        }
    }
    let min = LINES_200KEV
        .lines
        .iter()
        .map(|l| l.energy)
        .fold(f64::INFINITY, f64::min);
    let max = LINES_200KEV
        .lines
        .iter()
        .map(|l| l.energy)
        .fold(0.0, f64::max);
    assert_eq!((min, max), (0.038, 19.9647));
}

#[test]
fn iupac_names_are_sorted_and_unique() {
    assert!(IUPAC_NAMES.windows(2).all(|w| w[0] < w[1]));
    assert!(IUPAC_NAMES.contains(&"KL3") && IUPAC_NAMES.contains(&"M5N7"));
    // Every name is used by some table.
    for (i, _) in IUPAC_NAMES.iter().enumerate() {
        assert!(all_tables()
            .iter()
            .any(|t| t.lines.iter().any(|l| l.name as usize == i)));
    }
}

#[test]
fn line_table_by_beam_energy() {
    assert_eq!(line_table(100.0).unwrap().beam_energy_kev, 100);
    assert_eq!(line_table(200.0).unwrap().beam_energy_kev, 200);
    assert_eq!(line_table(300.0).unwrap().beam_energy_kev, 300);
    assert!(line_table(150.0).is_none());
    assert!(line_table(200.5).is_none());
    assert!(line_table(f64::NAN).is_none());
}

#[test]
fn symbols_and_atomic_numbers() {
    assert_eq!(z_from_symbol("Fe"), Some(26));
    assert_eq!(z_from_symbol("fe"), None);
    assert_eq!(z_from_symbol(""), None);
    assert_eq!(z_from_symbol("H"), Some(1));
    assert_eq!(z_from_symbol("Cf"), Some(98));
    assert_eq!(symbol(8), Some("O"));
    assert_eq!(symbol(0), None);
    assert_eq!(symbol(99), None);
    assert_eq!(ELEMENTS[0].symbol, "");
    for z in 1..=MAX_Z {
        let s = symbol(z).unwrap();
        assert_eq!(z_from_symbol(s), Some(z));
    }
}

#[test]
fn element_data() {
    let o = &ELEMENTS[8];
    assert_eq!(o.symbol, "O");
    assert_eq!(o.density, 0.001429); // g/cm³ (espm's periodic table has 1.429, g/L)
    assert_eq!(ELEMENTS[7].density, 0.001251);
    let fe = &ELEMENTS[26];
    assert_eq!(fe.density, 7.874);
    assert_eq!(fe.atomic_weight, 55.845);
    assert_eq!(fe.atomic_mass, 55.8452);
    assert!(ELEMENTS[0].density.is_nan());
    // Missing in exspy: At and Fr densities, Cm/Bk/Cf entirely.
    for z in [85, 87, 96, 97, 98] {
        assert!(ELEMENTS[z].density.is_nan(), "Z={z}");
    }
    for (z, e) in ELEMENTS.iter().enumerate().skip(1) {
        assert!(e.atomic_mass > 0.0, "Z={z}");
        if z <= 95 {
            // Present in exspy's database (H..Am).
            assert!(e.atomic_weight > 0.0, "Z={z}");
            assert!((e.atomic_mass - e.atomic_weight).abs() < 1.0, "Z={z}");
            if z != 85 && z != 87 {
                assert!(e.density > 0.0, "Z={z}");
            }
        } else {
            assert!(e.atomic_weight.is_nan(), "Z={z}");
        }
    }
}

#[test]
fn sdd_curve_is_sorted() {
    assert_eq!(SDD_ENERGIES.len(), 160);
    assert_eq!(SDD_EFFICIENCY.len(), 160);
    assert!(SDD_ENERGIES.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(SDD_ENERGIES[0], 0.09776164191499793);
    assert_eq!(SDD_ENERGIES[159], 40.664246885352576);
    // The two rows swapped in the file, now in order with their efficiencies.
    assert_eq!(SDD_ENERGIES[68], 1.6390994726739383);
    assert_eq!(SDD_EFFICIENCY[68], 0.9445409326424873);
    assert_eq!(SDD_ENERGIES[69], 1.643471227941951);
    assert_eq!(SDD_EFFICIENCY[69], 0.9505326424870468);
    assert!(SDD_EFFICIENCY.iter().all(|&y| y > 0.06 && y < 0.98));
}

#[test]
fn siegbahn_names() {
    assert_eq!(SIEGBAHN_TO_IUPAC.len(), 34);
    assert_eq!(SIEGBAHN_TO_IUPAC[0], ("Ka", &["KL3", "KL2", "KL1"][..]));
    let get = |k: &str| SIEGBAHN_TO_IUPAC.iter().find(|(s, _)| *s == k).unwrap().1;
    assert_eq!(get("Kb"), ["KM3", "KN3", "KM2", "KN5", "KM5"]);
    assert_eq!(get("La"), ["L3M5", "L3M4"]);
    assert_eq!(get("Ma"), ["M5N7", "M5N6"]);
}

#[cfg(feature = "absorption")]
mod absorption {
    use edxs_tables::{mac_table, MAC_TABLES};

    #[test]
    fn mac_tables_are_sorted_and_start_at_zero() {
        let mut n = 0;
        for z in 0..=edxs_tables::MAX_Z {
            match mac_table(z) {
                Some(t) => {
                    n += 1;
                    assert!((3..=92).contains(&z), "Z={z}");
                    assert_eq!(t.energies.len(), t.mac.len());
                    assert!(t.energies.len() >= 148 && t.energies.len() <= 912);
                    assert_eq!((t.energies[0], t.mac[0]), (0.0, 0.0), "Z={z}");
                    assert!(t.energies.windows(2).all(|w| w[0] < w[1]), "Z={z}");
                    assert!(t.mac[1..].iter().all(|&m| m > 0.0), "Z={z}");
                    assert!(*t.energies.last().unwrap() > 20.0);
                }
                None => assert!(MAC_TABLES[z as usize].mac.is_empty()),
            }
        }
        assert_eq!(n, 90);
        assert!(mac_table(2).is_none());
        assert!(mac_table(93).is_none());
        assert!(mac_table(255).is_none());
    }

    #[test]
    fn iron_mac_knots() {
        let fe = mac_table(26).unwrap();
        assert_eq!(fe.energies.len(), 191);
        // K edge at 7.112 keV, represented by two close knots (no duplicates).
        let i = fe.energies.iter().position(|&e| e > 7.1).unwrap();
        assert!(
            fe.mac[i] < 60.0 && fe.mac[i + 1] > 400.0,
            "{:?}",
            &fe.mac[i - 1..i + 3]
        );
    }
}
