//! Every public type can cross threads.

use backproject::*;

fn send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<AxisRange>();
    send_sync::<GridAxis>();
    send_sync::<VoxelGrid>();
    send_sync::<Volume>();
    send_sync::<Direct>();
    send_sync::<Separable>();
    send_sync::<RangeCompressed>();
    send_sync::<ProjectionMethod>();
    send_sync::<FrequencyWindow>();
    send_sync::<Interpolation>();
    send_sync::<Problem<'static>>();
    send_sync::<Box<dyn BackProjector>>();
    send_sync::<MaxProjection>();
    send_sync::<LevelImage>();
    send_sync::<DepthMap>();
    send_sync::<DynamicRange>();
    send_sync::<AmplitudeImage>();
    send_sync::<DepthImage>();
    send_sync::<ImageProducts>();
    send_sync::<ColourMap>();
    send_sync::<BackprojectError>();
}

#[test]
fn methods_survive_a_serde_round_trip() {
    for method in [
        ProjectionMethod::Direct(Direct),
        ProjectionMethod::Separable(Separable::new(100).unwrap()),
        ProjectionMethod::RangeCompressed(
            RangeCompressed::new(16, FrequencyWindow::Hamming, Interpolation::Nearest).unwrap(),
        ),
        ProjectionMethod::default(),
    ] {
        let json = serde_json::to_string(&method).unwrap();
        let back: ProjectionMethod = serde_json::from_str(&json).unwrap();
        assert_eq!(back, method, "{json}");
    }
}
