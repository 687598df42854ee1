//! An [`Executor`] over OpenCL 1.2 (dynamically loaded ICD loader): the test device that runs
//! every kernel on the CPU through PoCL in CI, and a fallback for other OpenCL GPUs.

use crate::error::{Error, Result};
use crate::kernels::{program_source, Kernel, OPENCL_OPTIONS};
use crate::launch::{Arg, Executor, Launch};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
use opencl3::kernel::{ExecuteKernel, Kernel as ClKernel};
use opencl3::memory::{Buffer, CL_MEM_READ_WRITE};
use opencl3::program::Program;
use opencl3::types::{cl_uint, CL_BLOCKING};
use std::collections::HashMap;
use std::sync::Mutex;

/// The OpenCL executor: one device, one in-order queue, the argen program built once.
pub struct OpenClExecutor {
    device: Device,
    context: Context,
    queue: CommandQueue,
    kernels: Mutex<HashMap<Kernel, ClKernel>>,
    _program: Mutex<Program>,
}

impl std::fmt::Debug for OpenClExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenClExecutor")
            .field("device", &self.describe())
            .finish()
    }
}

fn driver(call: &'static str) -> impl Fn(opencl3::error_codes::ClError) -> Error {
    move |e| Error::Driver {
        call,
        detail: e.to_string(),
    }
}

/// A buffer on an OpenCL device.
#[derive(Debug)]
pub struct ClBuffer {
    buf: Buffer<u8>,
    len: usize,
}

impl OpenClExecutor {
    /// Opens the first OpenCL device of any platform and builds the program. Errors with
    /// [`Error::LibraryNotFound`] when no ICD loader is installed and [`Error::NoDevice`] when
    /// no platform or device exists.
    pub fn open_first() -> Result<Self> {
        if !cl3::is_opencl_runtime_available() {
            return Err(Error::LibraryNotFound {
                what: "OpenCL ICD loader",
                names: vec!["libOpenCL.so.1".into(), "libOpenCL.so".into()],
                searched: vec![],
            });
        }
        let ids =
            opencl3::device::get_all_devices(CL_DEVICE_TYPE_ALL).map_err(|e| Error::NoDevice {
                reason: format!("no OpenCL platform ({e})"),
            })?;
        let id = *ids.first().ok_or(Error::NoDevice {
            reason: "no OpenCL device".into(),
        })?;
        let device = Device::new(id);
        let context = Context::from_device(&device).map_err(driver("clCreateContext"))?;
        #[allow(deprecated)]
        let queue =
            CommandQueue::create_default(&context, 0).map_err(driver("clCreateCommandQueue"))?;
        let src = program_source();
        let program = Program::create_and_build_from_source(&context, &src, OPENCL_OPTIONS)
            .map_err(|log| Error::Compile {
                compiler: "OpenCL",
                target: device.name().unwrap_or_default(),
                log,
            })?;
        let mut kernels = HashMap::new();
        for k in Kernel::ALL {
            let kernel = ClKernel::create(&program, k.name()).map_err(driver("clCreateKernel"))?;
            kernels.insert(k, kernel);
        }
        Ok(OpenClExecutor {
            device,
            context,
            queue,
            kernels: Mutex::new(kernels),
            _program: Mutex::new(program),
        })
    }
}

impl Executor for OpenClExecutor {
    type Buffer = ClBuffer;

    fn describe(&self) -> String {
        format!(
            "OpenCL {} ({})",
            self.device.name().unwrap_or_default(),
            self.device.version().unwrap_or_default()
        )
    }

    fn alloc(&self, bytes: usize) -> Result<ClBuffer> {
        let len = bytes.max(1);
        // SAFETY: no host pointer is passed; the size is positive.
        let mut buf = unsafe {
            Buffer::<u8>::create(&self.context, CL_MEM_READ_WRITE, len, std::ptr::null_mut())
        }
        .map_err(driver("clCreateBuffer"))?;
        let zeros = vec![0u8; len];
        // SAFETY: a blocking write of `len` bytes into a buffer of `len` bytes.
        unsafe {
            self.queue
                .enqueue_write_buffer(&mut buf, CL_BLOCKING, 0, &zeros, &[])
        }
        .map_err(driver("clEnqueueWriteBuffer"))?;
        Ok(ClBuffer { buf, len })
    }

    fn len(&self, buf: &ClBuffer) -> usize {
        buf.len
    }

    fn write(&self, buf: &mut ClBuffer, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        check_range(buf.len, offset, data.len())?;
        // SAFETY: blocking write inside the buffer's bounds (checked above).
        unsafe {
            self.queue
                .enqueue_write_buffer(&mut buf.buf, CL_BLOCKING, offset, data, &[])
        }
        .map_err(driver("clEnqueueWriteBuffer"))?;
        Ok(())
    }

    fn read(&self, buf: &ClBuffer, offset: usize, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        check_range(buf.len, offset, out.len())?;
        // SAFETY: blocking read inside the buffer's bounds (checked above); the in-order queue
        // finishes earlier launches first.
        unsafe {
            self.queue
                .enqueue_read_buffer(&buf.buf, CL_BLOCKING, offset, out, &[])
        }
        .map_err(driver("clEnqueueReadBuffer"))?;
        Ok(())
    }

    fn launch(&self, launch: &Launch<'_, ClBuffer>) -> Result<()> {
        if launch.grid == 0 {
            return Ok(());
        }
        let kernels = self.kernels.lock().map_err(|_| Error::Driver {
            call: "kernel table",
            detail: "poisoned lock".into(),
        })?;
        let kernel = kernels.get(&launch.kernel).ok_or(Error::Driver {
            call: "clCreateKernel",
            detail: format!("kernel {} missing", launch.kernel.name()),
        })?;
        let mut exec = ExecuteKernel::new(kernel);
        for arg in launch.args {
            // SAFETY: argument kinds and order follow the kernel's declaration (each launch site
            // in this crate lists them next to the kernel's signature); buffers outlive the call.
            unsafe {
                match arg {
                    Arg::Buf(b) => exec.set_arg(&b.buf),
                    Arg::U32(v) => exec.set_arg(&(*v as cl_uint)),
                };
            }
        }
        exec.set_global_work_size(launch.grid as usize * launch.block as usize)
            .set_local_work_size(launch.block as usize);
        // SAFETY: the kernel's arguments are all set above.
        unsafe { exec.enqueue_nd_range(&self.queue) }.map_err(driver("clEnqueueNDRangeKernel"))?;
        self.queue.finish().map_err(driver("clFinish"))?;
        Ok(())
    }
}

fn check_range(len: usize, offset: usize, n: usize) -> Result<()> {
    if offset.checked_add(n).is_none_or(|end| end > len) {
        return Err(Error::Driver {
            call: "buffer copy",
            detail: format!("range {offset}+{n} outside a buffer of {len} bytes"),
        });
    }
    Ok(())
}
