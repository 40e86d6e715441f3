//! Tests: the parameter layout.

use abs_fit::{FaceParams, ParamGroup, ParamLayout, PoseScaling, RenderParams};
use morphable::{Pose, SamplingConfig};
use nalgebra::Vector3;
use proptest::prelude::*;
use rand::SeedableRng;

proptest! {
    #[test]
    fn flat_vectors_round_trip(
        seed in any::<u64>(),
        material in 0.0f64..1.0, antenna in 0.2f64..0.3, range in 15.0f64..30.0,
        tz in any::<bool>(),
    ) {
        let layout = ParamLayout { translation_z: tz, ..ParamLayout::default() };
        let sampling = SamplingConfig { max_translation_z_m: if tz { 0.02 } else { 0.0 }, ..SamplingConfig::default() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let face = FaceParams::from_sample(
            sampling.sample(&mut rng),
            RenderParams { material, antenna_cm: antenna, dynamic_range_db: range },
        );
        let v = layout.to_vector(&face);
        prop_assert_eq!(v.len(), layout.len());
        let back = layout.from_vector(&v).unwrap();
        // f32 storage: relative precision 6e-8 on O(1) scaled values.
        let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= 1e-6 * scale;
        for (a, b) in face.shape.iter().zip(&back.shape) { prop_assert!(close(*a, *b, 4.0)); }
        for (a, b) in face.expression.iter().zip(&back.expression) { prop_assert!(close(*a, *b, 4.0)); }
        prop_assert!((face.pose.translation - back.pose.translation).norm() < 1e-8);
        prop_assert!(close(face.pose.yaw, back.pose.yaw, 0.2));
        prop_assert!(close(face.pose.roll, back.pose.roll, 0.2));
        prop_assert!(close(face.render.material, back.render.material, 1.0));
        prop_assert!(close(face.render.antenna_cm, back.render.antenna_cm, 1.0));
        prop_assert!(close(face.render.dynamic_range_db, back.render.dynamic_range_db, 30.0));
        // Scaled values of the paper's distribution are within [−1, 1], each pose column
        // scaled by its own sampling range.
        prop_assert!(v[layout.range(ParamGroup::Translation)].iter().all(|x| x.abs() <= 1.0));
        prop_assert!(v[layout.range(ParamGroup::Rotation)].iter().all(|x| x.abs() <= 1.0 + 1e-6));
        prop_assert!(v[layout.range(ParamGroup::Render)].iter().all(|x| x.abs() <= 1.0 + 1e-6));
    }
}

#[test]
fn groups_partition_the_columns() {
    for tz in [false, true] {
        let layout = ParamLayout {
            translation_z: tz,
            ..ParamLayout::default()
        };
        let groups = ParamGroup::ALL;
        let mut next = 0;
        for g in groups {
            let r = layout.range(g);
            assert_eq!(r.start, next, "{g:?}");
            next = r.end;
        }
        assert_eq!(next, layout.len());
        assert_eq!(layout.names().len(), layout.len());
        // The paper: 10 + 7 + 2 + 3 + 3.
        assert_eq!(layout.len(), if tz { 26 } else { 25 });
    }
}

#[test]
fn scaling_is_the_papers() {
    let layout = ParamLayout::default();
    let face = FaceParams {
        shape: vec![1.0],
        expression: vec![],
        pose: Pose {
            yaw: 5f64.to_radians(),
            pitch: -10f64.to_radians(),
            roll: 0.0,
            translation: Vector3::new(0.05, -0.025, 0.0),
        },
        render: RenderParams {
            material: 0.0,
            antenna_cm: 0.3,
            dynamic_range_db: 22.5,
        },
    };
    let v = layout.to_vector(&face);
    let t = &v[layout.range(ParamGroup::Translation)];
    let r = &v[layout.range(ParamGroup::Rotation)];
    let m = &v[layout.range(ParamGroup::Render)];
    let near = |a: f32, b: f32| (a - b).abs() < 1e-6;
    // §3.2: each pose column by its own sampling range (t ± 5 cm, yaw ± 5°, pitch ± 10°), and
    // t_z, not sampled, by 5 cm.
    assert_eq!(t.len(), 3);
    assert!(near(t[0], 1.0) && near(t[1], -0.5) && near(t[2], 0.0));
    assert!(near(r[0], 1.0) && near(r[1], -1.0) && near(r[2], 0.0));
    assert_eq!(
        layout.describe_pose_scaling(),
        "t_x, t_y, t_z / 5 cm; yaw / 5°, pitch / 10°, roll / 10°"
    );
    // The fixed scaling divides every angle by 10°: yaw 5° → 0.5.
    let fixed = ParamLayout::new(&SamplingConfig::default(), PoseScaling::Fixed);
    let w = fixed.to_vector(&face);
    assert!(near(w[fixed.range(ParamGroup::Rotation)][0], 0.5));
    assert_eq!(
        fixed.from_vector(&w).unwrap().pose,
        layout.from_vector(&v).unwrap().pose
    );
    // Manifests written before the scales were recorded read as the fixed scaling.
    let mut json: serde_json::Value = serde_json::to_value(fixed).unwrap();
    json.as_object_mut().unwrap().remove("pose_scales");
    let old: ParamLayout = serde_json::from_value(json).unwrap();
    assert_eq!(old.pose_scales, fixed.pose_scales);
    assert!(near(m[0], -1.0) && near(m[1], 1.0) && near(m[2], 0.0));
    // Missing coefficients are zero.
    assert_eq!(v[1], 0.0);
    assert!(layout.from_vector(&v[1..]).is_err());
    let mut bad = v.clone();
    bad[3] = f32::NAN;
    let err = layout.from_vector(&bad).unwrap_err().to_string();
    assert!(err.contains("shape_3"), "{err}");
}
