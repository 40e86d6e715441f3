//! Scenes and settings shared by the tests.

use nalgebra::{Point3, Vector3};
use radar_sim::{
    CustomArray, ElementPattern, PointScatterer, Scene, SimulationConfig, Surface, SurfaceModel,
};

/// A face-sized convex stand-in: the front of an ellipsoid 150 × 200 mm across and 60 mm deep
/// (semi-axes 75 × 100 × 60 mm), its closest point 25 cm from the array, meshed at about 3 mm.
pub fn face_stand_in() -> Surface {
    Surface::ellipsoid_cap(
        Point3::new(0.0, 0.0, 0.31),
        Vector3::new(0.075, 0.1, 0.06),
        1.4,
        40,
        120,
    )
    .expect("valid cap")
}

/// A square plate of side `side` (m) parallel to the array, centred at (x, y, z), as two
/// triangles.
pub fn plate(centre: Point3<f64>, side: f64) -> Surface {
    let h = side / 2.0;
    let corner = |dx: f64, dy: f64| centre + Vector3::new(dx, dy, 0.0);
    Surface::new(
        vec![corner(-h, -h), corner(h, -h), corner(h, h), corner(-h, h)],
        vec![[0, 1, 2], [0, 2, 3]],
    )
    .expect("valid plate")
}

/// One point scatterer.
pub fn point(position: Point3<f64>, reflectivity_m2: f64) -> Scene {
    Scene::from_points([PointScatterer::new(position, reflectivity_m2).expect("finite point")])
}

/// An array of one TX and one RX.
pub fn pair(tx: Point3<f64>, rx: Point3<f64>) -> CustomArray {
    CustomArray::new(vec![tx], vec![rx]).expect("valid pair")
}

/// Defaults without noise.
pub fn noiseless() -> SimulationConfig {
    SimulationConfig {
        snr_db: None,
        ..SimulationConfig::default()
    }
}

/// Defaults without noise, with isotropic elements.
pub fn noiseless_isotropic() -> SimulationConfig {
    SimulationConfig {
        pattern: ElementPattern::Isotropic,
        ..noiseless()
    }
}

/// The paper-like sampled model (random hits), without noise.
pub fn sampled() -> SimulationConfig {
    SimulationConfig {
        surface: SurfaceModel::Sampled,
        ..noiseless()
    }
}
