//! Adapter selection, the open device, and turning wgpu's asynchronous failures into errors.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Environment variable that chooses the device when no `--device` flag is given.
pub const DEVICE_ENV: &str = "WGCNN_DEVICE";

/// Environment variable that forces a kernel variant: `tiled`, `software` or `auto`.
pub const KERNELS_ENV: &str = "WGCNN_KERNELS";

/// What the user asked to run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one; else the native CPU backend (a model's backend) or the
    /// software adapter (where a GPU adapter is asked for, as by the kernel tests).
    Auto,
    /// A hardware GPU only.
    Gpu,
    /// The software adapter (Mesa lavapipe, WARP, ...).
    Software,
    /// The native CPU backend (GEMMs on every core), no wgpu at all.
    Cpu,
    /// The CPU reference backend: plain loops on one core, the tests' oracle.
    Reference,
    /// The first adapter whose name contains this (case-insensitive).
    Name(String),
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "" | "auto" => DeviceChoice::Auto,
            "gpu" => DeviceChoice::Gpu,
            "software" | "sw" | "lavapipe" => DeviceChoice::Software,
            "cpu" | "native" => DeviceChoice::Cpu,
            "reference" | "ref" => DeviceChoice::Reference,
            _ if s.chars().all(|c| c.is_ascii_alphanumeric() || " -_().".contains(c)) => {
                DeviceChoice::Name(s.to_string())
            }
            _ => return Err(Error::BadDeviceChoice(s.to_string())),
        })
    }
}

impl DeviceChoice {
    /// The flag's value if given, else `WGCNN_DEVICE`, else [`DeviceChoice::Auto`].
    pub fn resolve(flag: Option<&str>) -> Result<Self> {
        match flag {
            Some(s) => s.parse(),
            None => match std::env::var(DEVICE_ENV) {
                Ok(s) => s.parse(),
                Err(_) => Ok(DeviceChoice::Auto),
            },
        }
    }
}

/// The kernel variants that suit an adapter. Software adapters run one invocation per SIMD lane on
/// the CPU and want small per-invocation tiles with broadcast operands; GPUs want more work per
/// workgroup. See `shaders/*.wgsl` for what each constant controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterProfile {
    Software,
    Hardware,
}

/// The family of kernels a device runs where there are two (the convolutions and the dense
/// layers' matrix products).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelVariant {
    /// Shaped for software adapters (lavapipe): small per-invocation tiles, broadcast operands,
    /// no workgroup memory (`shaders/conv2d.wgsl`, `matmul`).
    Software,
    /// Shaped for GPUs: implicit-GEMM tiles staged in workgroup memory, a 4 x 4 register tile per
    /// invocation (`shaders/conv2d_mm.wgsl`, `matmul_tiled`).
    Tiled,
}

impl std::fmt::Display for KernelVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelVariant::Software => "software",
            KernelVariant::Tiled => "tiled",
        })
    }
}

/// How the kernel variant is chosen: by the adapter's type, or forced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// Software kernels on a software adapter, tiled ones on any other.
    Auto,
    Forced(KernelVariant),
}

impl std::str::FromStr for KernelChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(KernelChoice::Auto),
            "software" => Ok(KernelChoice::Forced(KernelVariant::Software)),
            "tiled" => Ok(KernelChoice::Forced(KernelVariant::Tiled)),
            _ => Err(Error::Invalid(format!("{KERNELS_ENV}={s:?}: expected tiled, software or auto"))),
        }
    }
}

impl KernelChoice {
    /// `WGCNN_KERNELS` if set, else [`KernelChoice::Auto`].
    pub fn from_env() -> Result<Self> {
        match std::env::var(KERNELS_ENV) {
            Ok(s) => s.parse(),
            Err(_) => Ok(KernelChoice::Auto),
        }
    }

    /// The variant for an adapter of `profile`, and why, in words.
    pub fn variant(self, profile: AdapterProfile) -> (KernelVariant, &'static str) {
        match (self, profile) {
            (KernelChoice::Forced(variant), _) => (variant, "forced by WGCNN_KERNELS"),
            (KernelChoice::Auto, AdapterProfile::Software) => (KernelVariant::Software, "auto: a software adapter"),
            (KernelChoice::Auto, AdapterProfile::Hardware) => (KernelVariant::Tiled, "auto: a hardware adapter"),
        }
    }
}

/// An open wgpu device with its queue and the adapter's description.
pub struct GpuDevice {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub profile: AdapterProfile,
    /// The kernels its convolutions and matrix products run.
    pub kernels: KernelVariant,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuDevice({})", self.describe())
    }
}

fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Short description of an adapter: name, backend, device type.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

fn instance() -> wgpu::Instance {
    // Compute only: Vulkan, Metal and DX12. GL lacks the compute features we need.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc.with_env())
}

/// Every adapter wgpu can see, best first.
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| device_type_rank(a.get_info().device_type));
    adapters
}

impl GpuDevice {
    /// Opens the adapter `choice` names, with the kernels `kernels` chooses. The CPU backends are
    /// not GPUs and are refused here.
    pub fn new(choice: &DeviceChoice, kernels: KernelChoice) -> Result<GpuDevice> {
        // Lavapipe warns on every start without it; harmless to set for everyone else.
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            // SAFETY: set before any thread of ours reads the environment.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
        }
        let adapters = list_adapters();
        let found = || {
            if adapters.is_empty() {
                "none".to_string()
            } else {
                adapters.iter().map(|a| describe_adapter(&a.get_info())).collect::<Vec<_>>().join("; ")
            }
        };
        let is_software = |a: &wgpu::Adapter| a.get_info().device_type == wgpu::DeviceType::Cpu;
        let adapter = match choice {
            DeviceChoice::Cpu | DeviceChoice::Reference => {
                return Err(Error::Invalid("the CPU backends do not open a GPU".into()));
            }
            DeviceChoice::Auto => adapters.first(),
            DeviceChoice::Gpu => adapters.iter().find(|a| !is_software(a)),
            DeviceChoice::Software => adapters.iter().find(|a| is_software(a)),
            DeviceChoice::Name(name) => {
                let name = name.to_lowercase();
                adapters.iter().find(|a| a.get_info().name.to_lowercase().contains(&name))
            }
        };
        let Some(adapter) = adapter else {
            if adapters.is_empty() {
                return Err(Error::NoAdapter { detail: String::new() });
            }
            let wanted = match choice {
                DeviceChoice::Name(n) => n.clone(),
                other => format!("{other:?}").to_lowercase(),
            };
            return Err(Error::AdapterNotFound { wanted, found: found() });
        };
        Self::open(adapter, kernels)
    }

    fn open(adapter: &wgpu::Adapter, kernels: KernelChoice) -> Result<GpuDevice> {
        let info = adapter.get_info();
        // Ask for everything the adapter offers: the binding-size limits decide the largest batch.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgcnn"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::RequestDevice { adapter: describe_adapter(&info), reason: e.to_string() })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
        }));
        let profile =
            if info.device_type == wgpu::DeviceType::Cpu { AdapterProfile::Software } else { AdapterProfile::Hardware };
        let (kernels, _) = kernels.variant(profile);
        Ok(GpuDevice { device, queue, info, limits, profile, kernels, uncaptured })
    }

    /// "name (backend, device type)".
    pub fn describe(&self) -> String {
        describe_adapter(&self.info)
    }

    /// Largest tensor, in bytes, that one storage binding may hold on this device.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Turns errors that wgpu reported asynchronously into an `Err`.
    pub fn check_errors(&self) -> Result<()> {
        let mut errors = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        let more = errors.len();
        errors.clear();
        Err(Error::Gpu(if more > 0 { format!("{first} (and {more} more)") } else { first }))
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))?;
        self.check_errors()
    }
}
